"""Capture against a real IPython shell (issue 8): what a notebook really holds.

Cells run in IPython's own shell, so its namespace has IPython's ``open`` and ``In`` holds
the history the ``%%faas`` magic passes. Where behaviour matters, the handler.py written
is run in a fresh ``python`` process (a clean interpreter, as in the container).
"""

from __future__ import annotations

import base64
import builtins
import importlib.metadata
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from IPython.testing import globalipapp

from jupyter_faas import datafiles
from jupyter_faas.capture import capture, local_files
from jupyter_faas.errors import CaptureError
from jupyter_faas.pinning import pinned_requirements
from jupyter_faas.workspace import FaaSWorkspace


@pytest.fixture
def shell():
    """IPython's shell with an empty namespace and history."""
    ip = globalipapp.start_ipython() or globalipapp.get_ipython()  # one shell per process
    ip.reset(new_session=True)
    yield ip
    ip.reset(new_session=True)


def run(ip, *cells: str) -> None:
    for text in cells:
        result = ip.run_cell(textwrap.dedent(text), store_history=True)
        result.raise_error()


def capture_in(ip, text: str, **kw):
    """Capture as the %%faas magic does: the user namespace and ``In``."""
    history = [str(c) for c in ip.user_ns["In"]]
    return capture(textwrap.dedent(text).lstrip("\n"), ip.user_ns, history, **kw)


def refusal(ip, text: str, **kw) -> str:
    with pytest.raises(CaptureError) as info:
        capture_in(ip, text, **kw)
    return str(info.value)


def run_handler(folder: Path, source: str, args: dict, cwd: Path | None = None):
    """Write handler.py into ``folder`` and call its ``main(args)`` in a fresh interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(source)
    program = (
        "import json, runpy, sys\n"
        f"module = runpy.run_path({str(folder / 'handler.py')!r}, run_name='__faas_action__')\n"
        "print(json.dumps(module['main'](json.loads(sys.argv[1]))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", program, json.dumps(args)],
        cwd=cwd or folder.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# -- 1. bound methods of a module-level instance ------------------------------------------------


def test_bound_methods_of_random_are_imported_as_written(shell, tmp_path):
    run(shell, "from random import sample, choice as pick, randint, shuffle\n")
    captured = capture_in(
        shell,
        """
        def main(args):
            deck = list(args["v"])
            shuffle(deck)
            return {"s": sample(deck, 2), "p": pick("a"), "r": randint(3, 3), "n": len(deck)}
        """,
    )
    assert captured.imports == [
        "from random import choice as pick",
        "from random import randint",
        "from random import sample",
        "from random import shuffle",
    ]
    result = run_handler(tmp_path / "f", captured.source(), {"v": [1, 2, 3]})
    assert result["p"] == "a" and result["r"] == 3 and result["n"] == 3
    assert set(result["s"]) <= {1, 2, 3}


def test_bound_method_without_an_import_statement_falls_back_to_its_module(shell, tmp_path):
    import random

    shell.user_ns.update(rand=random.random, pick=random.choice)  # not bound by an import
    captured = capture_in(
        shell, "def main(args):\n    return {'r': 0 <= rand() < 1, 'p': pick('z')}\n"
    )
    assert captured.imports == [
        "from random import choice as pick",
        "from random import random as rand",
    ]
    assert run_handler(tmp_path / "f", captured.source(), {}) == {"r": True, "p": "z"}


# -- 2. IPython's open ---------------------------------------------------------------------------


def test_ipython_open_is_the_builtin(shell, tmp_path):
    assert shell.user_ns["open"] is not builtins.open  # IPython's stand-in, as in a kernel
    data = tmp_path / "input.txt"
    data.write_text("42")
    captured = capture_in(
        shell,
        """
        def main(args):
            with open(args["path"]) as handle:
                return {"v": handle.read()}
        """,
    )
    assert captured.imports == [] and captured.definitions == []
    assert run_handler(tmp_path / "f", captured.source(), {"path": str(data)}) == {"v": "42"}


# -- 3. values built in an earlier cell ----------------------------------------------------------


def test_value_built_in_an_earlier_cell_is_rebuilt_by_its_statement(shell, tmp_path):
    run(
        shell,
        "from jinja2 import Template\nGREETING = 'Hello'\n",
        "TEMPLATE = Template(GREETING + ', {{ name }}!')\n",
        "TEMPLATE.render(name='kernel')\n",  # trying it out does not change it
    )
    captured = capture_in(
        shell, "def main(args):\n    return {'text': TEMPLATE.render(name=args['name'])}\n"
    )
    assert captured.imports == ["from jinja2 import Template"]
    assert captured.constants == ["GREETING = 'Hello'"]
    assert captured.definitions == ["TEMPLATE = Template(GREETING + ', {{ name }}!')"]
    assert captured.modules == {"jinja2"}
    result = run_handler(tmp_path / "f", captured.source(), {"name": "container"})
    assert result == {"text": "Hello, container!"}


def test_value_whose_statement_uses_a_notebook_function(shell, tmp_path):
    run(
        shell,
        """
        import collections

        def counts(text):
            return collections.Counter(text)
        """,
        "LETTERS = counts('abracadabra')\n",
    )
    captured = capture_in(shell, "def main(args):\n    return {'a': LETTERS[args['c']]}\n")
    source = captured.source()
    assert source.index("def counts") < source.index("LETTERS = counts")
    assert run_handler(tmp_path / "f", source, {"c": "a"}) == {"a": 5}


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["from jinja2 import Template\nT = Template(open('t.html').read())\n"], "calls open()"),
        (["import collections\nT = collections.Counter()\n", "T.update('abc')\n"], "T.update"),
        (["from collections import Counter\nT = Counter()\n", "T['x'] = 1\n"], "T['x'] = 1"),
        (["T = [3, 1]\nT.sort()\nT = T + [object()]\n"], "earlier value of 'T'"),
        (
            ["from collections import Counter\nfor T in [Counter()]:\n    pass\n"],
            "not an assignment",
        ),
        (["T, N = object(), 1\n", "N = 2\n"], "also sets 'N'"),
        (["import socket\nT = [socket.gethostname(), object()]\n"], "uses the socket module"),
        (
            [
                "from collections import Counter\ndef reset():\n    global T\n    T = Counter()\n",
                "T = Counter()\nreset()\n",
            ],
            "global T",
        ),
    ],
)
def test_value_whose_statement_would_not_rebuild_it_is_refused(shell, tmp_path, cells, expected):
    (tmp_path / "t.html").write_text("{{ x }}")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        run(shell, *cells)
        message = refusal(shell, "def main(args):\n    return {'t': str(T)}\n")
    assert "'T'" in message and expected in message, message
    assert "would not give the same value" in message
    assert "inside the function" in message


def test_value_without_a_defining_statement_says_what_works(shell):
    run(shell, "import collections\nglobals()['MADE'] = collections.Counter('ab')\n")
    message = refusal(shell, "def main(args):\n    return {'n': len(MADE)}\n")
    assert "'MADE'" in message and "collections.Counter" in message
    assert "cannot be captured" in message
    assert "`MADE = ...`" in message  # the rule: a statement that builds it
    assert "inside the function cell" in message and "re-run" in message  # the fix


def test_a_trained_model_is_not_rebuilt_from_its_constructor(shell):
    run(
        shell,
        """
        class Model:
            def __init__(self):
                self.weights = None

            def fit(self, xs):
                self.weights = sum(xs)
                return self
        """,
        "model = Model()\n",
        "model.fit([1, 2])\n",
    )
    message = refusal(shell, "def main(args):\n    return {'w': model.weights}\n")
    assert "'model'" in message and "model.fit([1, 2])" in message


# -- 5. the whole dependency closure is pinned ---------------------------------------------------


def test_dependencies_of_imported_distributions_are_pinned(shell, tmp_path):
    run(shell, "import jinja2\n")
    captured = capture_in(shell, "def main(args):\n    return {'v': jinja2.__version__}\n")
    assert pinned_requirements(captured.modules) == [
        f"Jinja2=={importlib.metadata.version('jinja2')}",
        f"MarkupSafe=={importlib.metadata.version('markupsafe')}",
    ]
    bundle = FaaSWorkspace(bundle_dir=str(tmp_path)).capture_cell(
        "greeter", "def main(args):\n    return {'v': jinja2.__version__}\n", shell.user_ns, []
    )
    assert f"MarkupSafe=={importlib.metadata.version('markupsafe')}\n" in bundle.requirements


def _fake_distribution(site: Path, name: str, version: str, requires: list[str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "top_level.txt").write_text(f"{name.lower()}\n")
    (site / f"{name.lower()}.py").write_text("")


def test_closure_follows_markers_and_extras(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_distribution(
        site,
        "Fakeapp",
        "1.0",
        [
            "fakelib[speed]>=1",
            "fakewin; sys_platform == 'win32'",
            "fakedocs; extra == 'docs'",
        ],
    )
    _fake_distribution(site, "fakelib", "2.5", ["fakebase", "fakefast; extra == 'speed'"])
    _fake_distribution(site, "fakebase", "0.3", [])
    _fake_distribution(site, "fakefast", "4.0", [])
    _fake_distribution(site, "fakewin", "1.0", [])
    _fake_distribution(site, "fakedocs", "1.0", [])
    monkeypatch.syspath_prepend(str(site))
    assert pinned_requirements({"fakeapp"}) == [
        "Fakeapp==1.0",
        "fakebase==0.3",
        "fakefast==4.0",
        "fakelib==2.5",
    ]
    assert pinned_requirements({"fakelib"}) == ["fakebase==0.3", "fakelib==2.5"]


# -- 6. the user's spelling of imports -----------------------------------------------------------


def test_imports_keep_the_spelling_of_the_notebook(shell, tmp_path):
    run(
        shell,
        "import os.path\nimport numpy as np\nfrom collections import OrderedDict, Counter\n",
        "from jinja2 import Template\nimport json as codec\n",
        "import pickle as codec\n",  # rebinds: the latest statement that gives the value wins
    )
    captured = capture_in(
        shell,
        """
        def main(args):
            text = Template("{{ n }}").render(n=int(np.int64(Counter("aa")["a"])))
            return {"t": text, "p": os.path.join("a", "b"), "c": codec.__name__}
        """,
    )
    assert sorted(captured.imports) == [
        "from collections import Counter",
        "from jinja2 import Template",
        "import numpy as np",
        "import os.path",
        "import pickle as codec",
    ]
    result = run_handler(tmp_path / "f", captured.source(), {})
    assert result == {"t": "2", "p": "a/b", "c": "pickle"}


def test_without_an_import_statement_the_resolved_module_is_written(shell):
    from jinja2 import Template

    shell.user_ns["Template"] = Template
    captured = capture_in(shell, "def main(args):\n    return {'t': Template('x').render()}\n")
    assert captured.imports == ["from jinja2.environment import Template"]


# -- 12. notebook-local files --------------------------------------------------------------------


FILE_CELL = """
from pathlib import Path

def main(args):
    with open("template.html") as handle:
        page = handle.read()
    record = json.loads((Path("data") / "x.json").read_text())
    return {"page": page, "x": record["x"], "key": args.get("data")}
"""


@pytest.fixture
def notebook_dir(tmp_path, monkeypatch):
    folder = tmp_path / "notebook"
    (folder / "data").mkdir(parents=True)
    (folder / "template.html").write_text("<p>hi</p>")
    (folder / "data" / "x.json").write_text('{"x": 7}')
    monkeypatch.chdir(folder)
    return folder


def test_notebook_local_files_travel_beside_handler(shell, notebook_dir, tmp_path):
    run(shell, "import json\n")
    captured = capture_in(shell, FILE_CELL)
    assert captured.data_files == {
        "template.html": str(notebook_dir / "template.html"),
        "data/x.json": str(notebook_dir / "data" / "x.json"),
    }
    # The bundle folder as the workspace writes it; the runtime's working directory is elsewhere.
    bundle = FaaSWorkspace(bundle_dir=str(tmp_path / "functions")).capture_cell(
        "pages",
        textwrap.dedent(FILE_CELL),
        shell.user_ns,
        [str(c) for c in shell.user_ns["In"]],
    )
    assert (bundle.path / "data" / "x.json").read_text() == '{"x": 7}'
    assert bundle.metadata.data_files == ["data/x.json", "template.html"]
    # They travel with the code (the /init zip) and count as code.
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(bundle.init_value()["code"]))).namelist()
    assert {"handler.py", "data/x.json", "template.html"} <= set(names)
    before = bundle.code_sha256()
    (bundle.path / "template.html").write_text("<p>changed</p>")
    assert bundle.code_sha256() != before
    (bundle.path / "template.html").write_text((notebook_dir / "template.html").read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_handler(bundle.path, bundle.code, {"data": 1}, cwd=elsewhere)
    assert result == {"page": "<p>hi</p>", "x": 7, "key": 1}


def test_large_or_outside_files_are_refused_by_reference(shell, notebook_dir, monkeypatch):
    (notebook_dir / "big.bin").write_bytes(b"\0" * (datafiles.MAX_DATA_BYTES + 1))
    message = refusal(
        shell, "def main(args):\n    return {'n': len(open('big.bin', 'rb').read())}\n"
    )
    assert (
        "'big.bin' (1.0 MB)" in message
        and "more than the 1.0 MB" in message
        and "by reference" in message
    )
    (notebook_dir.parent / "outside.txt").write_text("x")
    message = refusal(
        shell,
        "def main(args):\n    return {'t': open('../outside.txt').read()}\n",
    )
    assert "'../outside.txt'" in message and "outside the notebook's folder" in message


def test_a_key_named_like_a_folder_is_not_data(notebook_dir):
    import ast

    tree = ast.parse("args['data']\nargs.get('data')\nif mode == 'data': pass\n")
    assert local_files(tree) == {}
    assert set(local_files(ast.parse("FileSystemLoader('data')"))) == {"data"}


def test_files_the_code_writes_are_not_data(notebook_dir):
    import ast

    code = (
        "open('template.html', 'w').write('x')\n"
        "Path('data/x.json').write_text('{}')\n"
        "frame.to_csv('template.html')\n"
    )
    assert local_files(ast.parse(code)) == {}
    assert set(local_files(ast.parse("open('template.html')"))) == {"template.html"}


def test_the_suggested_fix_for_a_value_built_from_a_file_works(shell, notebook_dir, tmp_path):
    run(shell, "from jinja2 import Template\nT = Template(open('template.html').read())\n")
    message = refusal(shell, "def main(args):\n    return {'page': T.render()}\n")
    assert "calls open()" in message and "TEXT = Path('template.html').read_text()" in message
    run(
        shell,
        "from pathlib import Path\nTEXT = Path('template.html').read_text()\n",
        "T = Template(TEXT)\n",
    )
    captured = capture_in(shell, "def main(args):\n    return {'page': T.render()}\n")
    assert captured.constants == ["TEXT = '<p>hi</p>'"]
    assert run_handler(tmp_path / "f", captured.source(), {}) == {"page": "<p>hi</p>"}
