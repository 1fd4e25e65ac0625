"""Capture of a cell: the cell plus exactly what it uses, or an error that says what to do.

A "kernel" here is a plain namespace whose ``__name__`` is ``__main__`` (as in IPython), filled
by executing cell sources; the same sources are the history ``capture`` reads definitions from.
The captured source is executed in a fresh namespace to prove it stands on its own.
"""

from __future__ import annotations

import importlib.metadata
import io
import math
import socket
import sys
import textwrap

import numpy as np
import pytest

from jupyter_faas.capture import capture, free_globals
from jupyter_faas.errors import CaptureError
from jupyter_faas.pinning import local_module_path, pinned_requirements
from jupyter_faas.workspace import FaaSWorkspace


def kernel(*cells: str) -> tuple[dict, list[str]]:
    """Run ``cells`` in a fresh ``__main__``-like namespace; return it and the history."""
    namespace: dict = {"__name__": "__main__"}
    history = [textwrap.dedent(cell) for cell in cells]
    for cell in history:
        exec(compile(cell, "<cell>", "exec"), namespace)
    return namespace, history


def cell(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def run_captured(source: str, args: dict, handler: str = "main"):
    """Execute handler.py's text alone (no kernel namespace) and call its handler."""
    module: dict = {"__name__": "__faas_test__"}
    exec(compile(source, "handler.py", "exec"), module)
    return module[handler](args)


def capture_error(source: str, namespace: dict | None = None, history=None, **kw) -> str:
    with pytest.raises(CaptureError) as info:
        capture(cell(source), namespace if namespace is not None else {}, history or [], **kw)
    return str(info.value)


# -- what is captured ----------------------------------------------------------------------------


def test_module_imports_with_alias_and_submodule():
    ns, history = kernel("import numpy as np\nfrom os import path\nimport json\n")
    source = cell(
        """
        def main(args):
            return {"n": int(np.sum(np.arange(4))), "p": path.join("a", "b"), "j": json.dumps(1)}
        """
    )
    captured = capture(source, ns, history)
    text = captured.source()
    assert "import numpy as np" in captured.imports
    assert "import json" in captured.imports
    assert any(
        line.endswith(" as path") or line == "from os import path" for line in text.split("\n")
    )
    assert captured.modules == {"numpy"}
    assert run_captured(text, {}) == {"n": 6, "p": "a/b", "j": "1"}


def test_imports_written_in_the_cell_are_kept_and_noted():
    captured = capture(
        cell(
            """
            import numpy as np
            from collections import Counter

            def main(args):
                return {"n": int(np.max(np.array(args["v"]))), "c": Counter("aab")["a"]}
            """
        ),
        {},
        [],
    )
    assert captured.imports == []
    assert captured.modules == {"numpy"}
    assert run_captured(captured.source(), {"v": [1, 5, 2]}) == {"n": 5, "c": 2}


def test_handler_does_not_repeat_an_import_the_cell_makes_unless_needed_earlier():
    # Issue 12 (finding 9): `import numpy as np` in an earlier cell and in this one.
    ns, history = kernel(
        "import numpy as np\nimport math\n",
        "def make_frame(seed=42):\n    return np.arange(seed % 5)\n",
        "class Shape:\n    RIGHT = math.pi / 2\n",
    )
    source = cell(
        """
        import numpy as np
        import math

        def main(args):
            return {"n": int(np.sum(make_frame())), "r": Shape.RIGHT}
        """
    )
    handler = capture(source, ns, history).source()
    lines = handler.splitlines()
    # numpy is only used inside make_frame's body (it runs later): the cell's import does;
    # math is read by Shape's body while handler.py loads, so it stays above it.
    assert lines.count("import numpy as np") == 1
    assert lines.count("import math") == 2
    assert lines.index("import math") < lines.index("class Shape:")
    assert run_captured(handler, {}) == {"n": sum(range(42 % 5)), "r": math.pi / 2}


def test_notebook_functions_latest_definition_wins_with_decorators_and_dependencies():
    ns, history = kernel(
        """
        def scale(x):
            return x * 100
        """,
        """
        import functools

        FACTOR = 3

        def twice(f):
            @functools.wraps(f)
            def wrapper(x):
                return 2 * f(x)
            return wrapper

        def scale(x):
            return x * FACTOR
        """,
        """
        @twice
        def helper(x):
            return scale(x) + 1
        """,
    )
    captured = capture(cell("def main(args):\n    return {'y': helper(args['x'])}\n"), ns, history)
    text = captured.source()
    assert "x * FACTOR" in text and "x * 100" not in text
    assert "@twice" in text
    assert "FACTOR = 3" in text
    assert "import functools" in text
    # Dependencies come before their users.
    assert text.index("def scale") < text.index("def helper")
    assert text.index("def twice") < text.index("def helper")
    assert run_captured(text, {"x": 2}) == {"y": 14}


def test_decorator_returning_a_wrapper_object():
    ns, history = kernel(
        """
        import functools

        @functools.lru_cache(maxsize=None)
        def square(x):
            return x * x
        """
    )
    text = capture(cell("def main(args):\n    return {'y': square(args['x'])}\n"), ns, history)
    assert "@functools.lru_cache(maxsize=None)" in text.source()
    assert run_captured(text.source(), {"x": 3}) == {"y": 9}


def test_classes_and_constants():
    ns, history = kernel(
        """
        THRESHOLD = 2.5
        COUNT = 3
        LABEL = "peak's"
        TABLE = {"a": [1, 2.0, {"b": ("x", None, True)}], "c": []}

        class Scaler:
            def __init__(self, factor):
                self.factor = factor

            def __call__(self, x):
                return x * self.factor
        """
    )
    source = cell(
        """
        def main(args):
            return {"s": Scaler(COUNT)(THRESHOLD), "l": LABEL, "t": TABLE}
        """
    )
    captured = capture(source, ns, history)
    assert "COUNT = 3" in captured.constants
    assert "THRESHOLD = 2.5" in captured.constants
    assert any(c.startswith("class Scaler") for c in captured.definitions)
    assert run_captured(captured.source(), {}) == {
        "s": 7.5,
        "l": "peak's",
        "t": {"a": [1, 2.0, {"b": ("x", None, True)}], "c": []},
    }


def test_names_used_only_in_nested_scopes_are_found():
    ns, history = kernel(
        """
        import math
        A, B, C, D = 1, 2, 3, 4
        def inner_helper(x):
            return x + 1
        """
    )
    source = cell(
        """
        def main(args):
            def nested():
                return A
            squares = [B * v for v in range(2)]
            f = lambda: C
            class Local:
                value = D
            return {"r": [nested(), squares, f(), Local.value, inner_helper(0), math.floor(1.5)]}
        """
    )
    assert {"A", "B", "C", "D", "inner_helper", "math"} <= free_globals(source)
    captured = capture(source, ns, history)
    assert run_captured(captured.source(), {}) == {"r": [1, [0, 2], 3, 4, 1, 1]}


def test_unused_names_and_builtins_are_not_captured():
    ns, history = kernel(
        """
        import numpy as np
        import json
        UNUSED = 42
        def unused_helper():
            return 1
        USED = 1
        """
    )
    captured = capture(
        cell("def main(args):\n    return {'n': len(args) + USED + max(1, 2)}\n"), ns, history
    )
    text = captured.source()
    for name in ("UNUSED", "unused_helper", "numpy", "json"):
        assert name not in text
    assert captured.constants == ["USED = 1"]
    assert captured.imports == []
    assert captured.modules == set()


def test_names_defined_in_the_cell_itself_are_not_looked_up():
    captured = capture(
        cell(
            """
            LIMIT = 5

            def clip(x):
                return min(x, LIMIT)

            def main(args):
                return {"y": clip(args["x"])}
            """
        ),
        {},
        [],
    )
    assert captured.constants == [] and captured.definitions == []
    assert run_captured(captured.source(), {"x": 9}) == {"y": 5}


def test_importable_functions_and_classes_from_libraries():
    ns, history = kernel("from numpy import mean\nfrom collections import OrderedDict\n")
    captured = capture(
        cell("def main(args):\n    return {'m': float(mean(args['v'])), 'o': OrderedDict(a=1)}\n"),
        ns,
        history,
    )
    assert "from numpy import mean" in captured.imports
    assert "from collections import OrderedDict" in captured.imports
    assert captured.modules == {"numpy"}
    assert run_captured(captured.source(), {"v": [1, 3]}) == {"m": 2.0, "o": {"a": 1}}


def test_custom_handler_name():
    captured = capture(cell("def handle(args):\n    return args\n"), {}, [], handler="handle")
    assert captured.handler == "handle"
    assert run_captured(captured.source(), {"a": 1}, handler="handle") == {"a": 1}


# -- requirements and local modules --------------------------------------------------------------


def test_stdlib_is_not_a_requirement_and_numpy_is_pinned():
    captured = capture(
        cell(
            """
            import json, os.path, collections
            import numpy as np

            def main(args):
                return {}
            """
        ),
        {},
        [],
    )
    assert captured.modules == {"numpy"}
    assert pinned_requirements(captured.modules) == [
        f"numpy=={importlib.metadata.version('numpy')}"
    ]
    assert pinned_requirements({"json", "os"}) == []


def test_local_module_is_copied_into_the_bundle(tmp_path, monkeypatch):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "mymod.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(code_dir))
    monkeypatch.delitem(sys.modules, "mymod", raising=False)
    assert local_module_path("mymod") == str(code_dir / "mymod.py")
    assert local_module_path("numpy") is None
    assert local_module_path("json") is None

    workspace = FaaSWorkspace(bundle_dir=str(tmp_path / "functions"))
    bundle = workspace.capture_cell(
        "tripler",
        cell(
            """
            import mymod
            import numpy as np

            def main(args):
                return {"y": mymod.triple(args["x"])}
            """
        ),
        {},
        [],
    )
    assert (bundle.path / "mymod.py").read_text() == (code_dir / "mymod.py").read_text()
    assert bundle.requirements == f"numpy=={importlib.metadata.version('numpy')}\n"
    assert "mymod" not in bundle.requirements


def test_what_a_local_module_imports_is_pinned_too(tmp_path, monkeypatch):
    code_dir = tmp_path / "code"
    (code_dir / "frames").mkdir(parents=True)
    (code_dir / "frames" / "__init__.py").write_text("from .load import load\n")
    (code_dir / "frames" / "load.py").write_text(
        "import numpy\n\ndef load():\n    return numpy.zeros(2)\n"
    )
    monkeypatch.syspath_prepend(str(code_dir))
    monkeypatch.delitem(sys.modules, "frames", raising=False)
    workspace = FaaSWorkspace(bundle_dir=str(tmp_path / "functions"))
    bundle = workspace.capture_cell(
        "loader",
        cell(
            """
            import frames

            def main(args):
                return {"n": len(frames.load())}
            """
        ),
        {},
        [],
    )
    assert (bundle.path / "frames" / "load.py").exists()
    assert bundle.requirements == f"numpy=={importlib.metadata.version('numpy')}\n"
    assert bundle.init_value()["binary"], "a bundle with local modules ships as a zip"


def test_local_module_used_through_a_kernel_name(tmp_path, monkeypatch):
    (tmp_path / "mymod.py").write_text("VALUE = 11\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymod", raising=False)
    ns, history = kernel("import mymod as mm\n")
    captured = capture(cell("def main(args):\n    return {'v': mm.VALUE}\n"), ns, history)
    assert "import mymod as mm" in captured.imports
    assert captured.local_modules == {"mymod": str(tmp_path / "mymod.py")}


# -- errors --------------------------------------------------------------------------------------


def test_syntax_error_names_the_line():
    message = capture_error(
        """
        def main(args):
            x = (1 +
            return x
        """
    )
    assert "Syntax error" in message
    assert "line 2" in message
    assert "x = (1 +" in message
    assert "nothing was built" in message


def test_no_main():
    message = capture_error("def handler(args):\n    return {}\n")
    assert "no function 'main'" in message
    assert "handler" in message  # names what the cell does define
    assert "--handler" in message


def test_no_function_named_by_handler_option():
    message = capture_error("def main(args):\n    return {}\n", handler="run")
    assert "no function 'run'" in message and "main" in message


def test_main_must_not_be_async():
    message = capture_error("async def main(args):\n    return {}\n")
    assert "async" in message and "asyncio.run" in message


def test_name_not_defined_in_kernel():
    message = capture_error("def main(args):\n    return {'x': frame_count}\n")
    assert "'frame_count'" in message and "not defined in the kernel" in message


def test_open_file_is_refused_by_reference(tmp_path):
    with open(tmp_path / "data.csv", "w") as handle:
        message = capture_error(
            "def main(args):\n    return {'x': handle.name}\n", {"handle": handle}
        )
    assert "'handle'" in message
    assert "open file" in message
    assert "by reference" in message


def test_socket_is_refused():
    with socket.socket() as sock:
        message = capture_error("def main(args):\n    return {'s': str(sock)}\n", {"sock": sock})
    assert "'sock'" in message and "socket" in message


def test_large_numpy_array_is_refused_by_reference():
    frame = np.zeros((1000, 1000))  # 8 MB
    message = capture_error("def main(args):\n    return {'n': frame.size}\n", {"frame": frame})
    assert "'frame'" in message
    assert "8.0 MB" in message
    assert "by reference" in message


def test_large_constant_is_refused_by_reference():
    values = list(range(100_000))
    message = capture_error("def main(args):\n    return {'n': len(values)}\n", {"values": values})
    assert "'values'" in message and "too large" in message and "by reference" in message


def test_object_instance_is_rebuilt_by_its_statement_or_refused_without_one():
    ns, history = kernel(
        """
        class Model:
            pass

        model = Model()
        """
    )
    captured = capture(
        cell("def main(args):\n    return {'m': type(model).__name__}\n"), ns, history
    )
    assert "model = Model()" in captured.definitions
    assert run_captured(captured.source(), {}) == {"m": "Model"}

    del history[:]  # the same object with no statement that built it
    message = capture_error("def main(args):\n    return {'m': str(model)}\n", ns, history)
    assert "'model'" in message
    assert "Model" in message
    assert "cannot be captured" in message
    assert "inside the function" in message
    assert "`model = ...`" in message


@pytest.mark.parametrize("name", ["In", "Out", "get_ipython"])
def test_ipython_names_are_refused(name):
    message = capture_error(f"def main(args):\n    return {{'x': str({name})}}\n", {name: []})
    assert repr(name) in message and "IPython" in message


def test_module_not_installed_says_pip_install():
    message = capture_error(
        """
        import surely_not_installed_pkg

        def main(args):
            return {}
        """
    )
    assert "'surely_not_installed_pkg'" in message
    assert "not installed" in message
    assert "%pip install surely_not_installed_pkg" in message


@pytest.mark.parametrize("value", [math.nan, math.inf, [1.0, -math.inf], {"a": math.nan}])
def test_non_finite_constants_are_refused(value):
    message = capture_error("def main(args):\n    return {'x': CUT}\n", {"CUT": value})
    assert "'CUT'" in message and "nan or inf" in message and "math.nan" in message


def test_function_without_source_is_refused():
    ns: dict = {"__name__": "__main__"}
    exec("def made_by_exec(x):\n    return x\n", ns)
    message = capture_error("def main(args):\n    return made_by_exec(args)\n", ns)
    assert "'made_by_exec'" in message and "source" in message


def test_error_in_a_dependency_names_it(tmp_path):
    buffer = io.StringIO()
    ns, history = kernel(
        """
        def helper():
            return stream.getvalue()
        """
    )
    ns["stream"] = buffer
    message = capture_error("def main(args):\n    return {'v': helper()}\n", ns, history)
    assert "'stream'" in message and "open file" in message
