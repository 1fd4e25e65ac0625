"""Capture one notebook cell as self-contained function source.

The cell is parsed, the global names it uses are found by static analysis
(``symtable``), and each one is resolved in the live kernel namespace: modules
become imports, notebook functions and classes bring their own source (taken
from the cell history, then analysed the same way), simple constants are
written as literals, and other values re-run the top-level statement that built
them. Imports keep the spelling of the statement that made them. Anything else
is refused with a message that names the name, so the scientist never gets a
function that fails only in the container.
"""

from __future__ import annotations

import ast
import builtins
import cmath
import functools
import importlib.metadata
import importlib.util
import inspect
import io
import os
import re
import socket
import symtable
import sys
import sysconfig
import types
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from .errors import CaptureError

#: Largest literal (length of its repr) written into handler.py for a captured constant.
MAX_CONSTANT_BYTES = 64 * 1024

#: Largest total size of the notebook-local files a function may take along in its bundle.
MAX_DATA_BYTES = 1024 * 1024

_LITERAL_TYPES = (type(None), bool, int, float, complex, str, bytes)
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_i", "_ii"}
_NOT_DISTRIBUTIONS = {"jupyter_faas"}
_NOT_PINNED = {"jupyter-faas"}

#: Calls that read files, the network or other processes: a value built by one is not rebuilt
#: by re-running its statement in the function's container.
_OUTSIDE_CALLS = {
    "open", "input", "read_text", "read_bytes", "load", "loadtxt", "genfromtxt", "fromfile",
    "memmap", "read_csv", "read_table", "read_excel", "read_json", "read_parquet", "read_pickle",
    "read_hdf", "read_feather", "read_sql", "imread", "urlopen", "urlretrieve", "connect",
    "create_connection", "system", "popen", "Popen", "check_output", "listdir", "scandir",
    "iterdir", "glob", "walk",
}  # fmt: skip
#: Modules for the network, processes and shared state: a statement using one is not re-run.
_OUTSIDE_MODULES = {
    "socket", "subprocess", "requests", "httpx", "urllib", "urllib3", "http", "aiohttp",
    "ftplib", "smtplib", "sqlite3", "shutil", "multiprocessing", "threading", "asyncio",
}  # fmt: skip
#: Calls that only show a value: a later statement passing the value to one does not change it.
_SHOW_CALLS = {"print", "display", "repr", "str", "len", "type", "help", "id", "dir", "vars"}
#: Methods that only read their object: a later cell trying the value out (``T.render(...)``,
#: ``model.predict(X)``) does not change it. Other discarded-result method calls may.
_QUERY_METHODS = {
    "render", "get", "keys", "values", "items", "copy", "count", "index", "format", "predict",
    "predict_proba", "score", "transform", "describe", "head", "tail", "info", "to_dict",
    "to_json", "tolist", "sum", "mean", "min", "max", "std", "startswith", "endswith", "find",
    "search", "match", "fullmatch", "findall", "finditer", "sub", "split", "strip", "lower",
    "upper", "encode", "decode", "dumps", "loads", "__repr__", "__str__",
}  # fmt: skip
#: Methods that write a file: their path (the object's for ``Path`` methods, else the first
#: argument) is an output, not data the function reads.
_PATH_WRITES = {"write_text", "write_bytes", "touch", "mkdir", "unlink"}
_WRITE_METHODS = _PATH_WRITES | {
    "to_csv", "to_json", "to_parquet", "to_excel", "to_pickle", "to_hdf", "savefig", "save",
    "savez", "savetxt", "imwrite",
}  # fmt: skip
#: Calls whose first argument is a path: a folder named there is data the function reads.
_PATH_CALLS = {
    "Path", "PurePath", "PosixPath", "FileSystemLoader", "listdir", "scandir", "walk", "glob",
    "iglob", "join", "open", "load", "loadtxt", "read_csv", "read_json", "read_parquet",
}  # fmt: skip


@dataclass
class CapturedFunction:
    """The pieces of a function's source, in the order they are written to handler.py."""

    handler: str
    cell_source: str
    imports: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    modules: set[str] = field(default_factory=set)
    local_modules: dict[str, str] = field(default_factory=dict)
    #: Notebook-local files the code names: path relative to the bundle -> file in the kernel.
    data_files: dict[str, str] = field(default_factory=dict)

    def source(self) -> str:
        """The full text of handler.py."""
        parts = []
        # Imports first even when the cell repeats one: handler.py reads top to bottom.
        imports = list(dict.fromkeys(self.imports + (["import os"] if self.data_files else [])))
        if imports:
            parts.append("\n".join(imports))
        if self.data_files:
            # The runtime does not run in the bundle's folder; the code's relative paths
            # name files beside handler.py, as they named files beside the notebook.
            parts.append("os.chdir(os.path.dirname(os.path.abspath(__file__)))")
        if self.constants:
            parts.append("\n".join(self.constants))
        parts.extend(self.definitions)
        parts.append(self.cell_source.strip("\n"))
        return "\n\n\n".join(parts) + "\n"


def parse_cell(source: str, where: str = "the cell") -> ast.Module:
    """Parse ``source``; a syntax error names its line and shows it."""
    try:
        return ast.parse(source)
    except SyntaxError as err:
        line = (err.text or "").rstrip("\n")
        pointer = f"\n    {line}\n    {' ' * max((err.offset or 1) - 1, 0)}^" if line else ""
        raise CaptureError(
            f"Syntax error in {where}, line {err.lineno}: {err.msg}.{pointer}",
            hint="Fix the line and run the cell again; nothing was built.",
        ) from None


def capture(
    cell_source: str,
    namespace: dict,
    history: list[str] | None = None,
    handler: str = "main",
) -> CapturedFunction:
    """Capture ``cell_source`` and what it uses from ``namespace`` as one module.

    Args:
        cell_source: The cell's code (without the ``%%faas`` line).
        namespace: The kernel's user namespace, where used names are resolved.
        history: Earlier cells' sources, oldest first, to find notebook definitions in.
        handler: The function that OpenWhisk calls with the input dict.

    Raises:
        CaptureError: a syntax error, no handler, or a used name that cannot be captured.
    """
    tree = parse_cell(cell_source)
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if handler not in functions:
        found = ", ".join(sorted(functions)) or "none"
        raise CaptureError(
            f"The cell defines no function {handler!r} (functions defined: {found}).",
            hint=f"Add `def {handler}(args):` returning a dict, or name the function to call "
            "with --handler NAME.",
        )
    if isinstance(functions[handler], ast.AsyncFunctionDef):
        raise CaptureError(
            f"{handler!r} is an async function; OpenWhisk calls a plain function.",
            hint=f"Write `def {handler}(args):` and run async code inside it with asyncio.run().",
        )
    captured = CapturedFunction(handler=handler, cell_source=cell_source)
    _Resolver(captured, namespace, history or []).resolve(cell_source, tree)
    _take_data_files(captured)
    return captured


def _take_data_files(captured: CapturedFunction) -> None:
    """Find the notebook-local files the code names; take them along, or refuse saying how."""
    code = "\n\n".join([*captured.constants, *captured.definitions, captured.cell_source])
    found = local_files(ast.parse(code))
    if not found:
        return
    outside = [rel for rel in found if rel.startswith("..")]
    if outside:
        raise CaptureError(
            f"The function reads {_quoted(outside)}, outside the notebook's folder "
            f"({os.getcwd()}): such files are not taken into the function's bundle.",
            hint=_BY_REFERENCE,
        )
    sizes = {rel: _tree_size(path) for rel, path in found.items()}
    listing = ", ".join(f"{rel!r} ({_size(size)})" for rel, size in sizes.items())
    if sum(sizes.values()) > MAX_DATA_BYTES:
        raise CaptureError(
            f"The function reads notebook-local files {listing}: together more than the "
            f"{_size(MAX_DATA_BYTES)} a function takes along in its bundle.",
            hint=_BY_REFERENCE,
        )
    captured.data_files.update(found)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} kB"


def _quoted(items) -> str:
    return ", ".join(repr(i) for i in items)


def _tree_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def local_files(tree: ast.AST, cwd: str | None = None) -> dict[str, str]:
    """Files and folders in ``cwd`` named by relative path literals in ``tree``.

    Any string literal naming an existing file counts; a folder counts when it is the first
    argument of a path-taking call (``Path``, ``FileSystemLoader``, ``open``…) or is joined with
    ``/`` or ``os.path.join``, so a key like ``args["data"]`` is not mistaken for a ``data``
    folder. Returns the normalised relative path -> its absolute path.
    """
    cwd = cwd or os.getcwd()
    candidates: dict[str, bool] = {}  # text -> whether a folder there counts

    def note(text, as_path: bool) -> None:
        if isinstance(text, str) and text:
            candidates[text] = candidates.get(text, False) or as_path

    written = {id(part) for node in ast.walk(tree) for part in _written_paths(node)}
    for node in ast.walk(tree):
        if id(node) in written:
            continue
        if isinstance(node, ast.Constant):
            note(node.value, False)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and id(node.args[0]) not in written
            and _call_name(node) in _PATH_CALLS
        ):
            note(_path_text(node), True)
            note(_path_text(node.args[0]), True)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            note(_path_text(node), True)
    found = {}
    for text, as_path in candidates.items():
        if len(text) > 1024 or any(c in text for c in "\n\0*?") or os.path.isabs(text):
            continue
        rel = os.path.normpath(text)
        if rel in (".", ".."):
            continue
        path = os.path.join(cwd, rel)
        try:
            if os.path.isfile(path) or (as_path and os.path.isdir(path)):
                found[rel] = os.path.abspath(path)
        except (OSError, ValueError):
            continue
    # ``Path("data") / "x.json"`` names data/x.json, not all of data/.
    return {
        rel: path
        for rel, path in found.items()
        if not any(other.startswith(rel + os.sep) for other in found)
    }


def _written_paths(node: ast.AST) -> list[ast.AST]:
    """The path expressions a call writes to (``open(p, "w")``, ``Path(p).write_text``,
    ``df.to_csv(p)``): an output file the kernel made is not data the function reads."""
    if not isinstance(node, ast.Call):
        return []
    name = _call_name(node)
    if name == "open" and node.args:
        mode = node.args[1] if len(node.args) > 1 else None
        mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
        if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax"):
            return list(ast.walk(node.args[0]))
    if name in _WRITE_METHODS and isinstance(node.func, ast.Attribute):
        target = node.func.value if name in _PATH_WRITES else (node.args or [None])[0]
        return list(ast.walk(target)) if target is not None else []
    return []


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _path_text(node: ast.AST) -> str | None:
    """The path a constant expression spells: ``"a"``, ``Path("a") / "b"``, ``join("a", "b")``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _path_text(node.left), _path_text(node.right)
        return os.path.join(left, right) if left is not None and right is not None else None
    if isinstance(node, ast.Call) and _call_name(node) in ("Path", "PurePath", "PosixPath", "join"):
        parts = [_path_text(arg) for arg in node.args]
        if parts and None not in parts and not node.keywords:
            return os.path.join(*parts)
    return None


class _History:
    """Earlier cells' top-level statements, parsed once, oldest first."""

    def __init__(self, cells: list[str]):
        self.statements: list[tuple[str, ast.stmt]] = []  # (cell source, statement)
        self.bound: list[set[str]] = []  # the names each statement binds
        #: name -> the imports binding it, oldest first, as (alias, module of a from-import).
        self.imports: dict[str, list[tuple[ast.alias, str | None]]] = {}
        #: Names some function in the history sets with ``global NAME``.
        self.set_by_functions: set[str] = set()
        for cell in cells:
            analysis = _analyse_cell(cell)
            if analysis is None:
                continue
            statements, bound, imports, set_by_functions = analysis
            self.statements.extend((cell, node) for node in statements)
            self.bound.extend(bound)
            for name, alias, module in imports:
                self.imports.setdefault(name, []).append((alias, module))
            self.set_by_functions.update(set_by_functions)

    def definition(self, name: str) -> str | None:
        """The source of the latest top-level ``def``/``class`` of ``name``."""
        for cell, node in reversed(self.statements):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name == name
            ):
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                return "\n".join(cell.splitlines()[start - 1 : node.end_lineno])
        return None

    def import_of(self, name: str, value) -> tuple[str, str] | None:
        """The user's own import that gives ``name`` its value, as (statement, module).

        The latest such statement wins; one binding several names is cut to this name
        (``from jinja2 import Template``), so handler.py reads as the notebook did.
        """
        for alias, module in reversed(self.imports.get(name, [])):
            if module is None:
                target = alias.name if alias.asname else alias.name.split(".")[0]
                if alias.name in sys.modules and sys.modules.get(target) is value:
                    return _import_text(alias, None), alias.name
            elif _from_gives(module, alias.name, value):
                return _import_text(alias, module), module
        return None

    def assignment(self, name: str) -> tuple[int, str, ast.stmt] | None:
        """The latest top-level statement that binds ``name``, as (index, cell, statement)."""
        for index in range(len(self.statements) - 1, -1, -1):
            if name in self.bound[index]:
                return index, *self.statements[index]
        return None


def _module_level(node: ast.AST):
    """``node`` and the nodes under it that run at module level (not in def/class/lambda)."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(reversed(list(ast.iter_child_nodes(item))))


@functools.lru_cache(maxsize=4096)
def _analyse_cell(cell: str) -> tuple[list, list, list, set] | None:
    """A cell's top-level statements, the names each binds, its imports as (name, alias,
    module), and the names its functions set with ``global``; None if it does not parse.

    Cached by text: capture runs on every edit and rereads the same history each time.
    """
    try:
        tree = ast.parse(cell)
    except (SyntaxError, ValueError):
        return None
    imports: list = []
    bound = [_bound_names(node, imports, ":=" in cell) for node in tree.body]
    set_by_functions = set()
    if "global" in cell:
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                set_by_functions.update(node.names)
    return tree.body, bound, imports, set_by_functions


def _bound_names(statement: ast.stmt, imports: list, walrus: bool = True) -> set[str]:
    """Names a top-level statement binds in the module namespace; its imports go to ``imports``.

    Simple statements are read directly (a history has thousands); compound ones, and any
    statement when the cell has a ``:=``, are walked.
    """
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not walrus:
        return {statement.name}
    if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and not walrus:
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        nodes = (n for target in targets for n in ast.walk(target))
    elif isinstance(statement, (ast.Expr, ast.Pass, ast.Return)) and not walrus:
        return set()
    else:
        nodes = _module_level(statement)
    names = set()
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                names.add(bound)
                imports.append((bound, alias, None))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names.add(alias.asname or alias.name)
                if node.level == 0 and node.module and alias.name != "*":
                    imports.append((alias.asname or alias.name, alias, node.module))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
    return names


def _import_text(alias: ast.alias, module: str | None) -> str:
    text = f"import {alias.name}" if module is None else f"from {module} import {alias.name}"
    return text + (f" as {alias.asname}" if alias.asname else "")


def _from_gives(module: str, attr: str, value) -> bool:
    """Whether ``from module import attr`` gives back ``value`` (a bound method: an equal one)."""
    if sys.modules.get(f"{module}.{attr}") is value and value is not None:
        return True
    return _same(getattr(sys.modules.get(module), attr, _MISSING), value)


_MISSING = object()


def _same(found, value) -> bool:
    """``found is value``; for bound methods, made anew on each attribute access, equality."""
    if found is value:
        return True
    methods = (types.MethodType, types.BuiltinMethodType)
    return isinstance(found, methods) and type(found) is type(value) and found == value


def _owner_import(value) -> tuple[str, str] | None:
    """(module, name) such that ``from module import name`` gives back ``value``.

    Covers library functions and classes, and bound methods of a module-level instance
    (``random.sample`` is a method of ``random``'s hidden ``Random()``).
    """
    name = getattr(value, "__name__", None)
    if not isinstance(name, str):
        return None
    candidates = [getattr(value, "__module__", None)]
    owner = getattr(value, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        candidates += [getattr(owner, "__module__", None), type(owner).__module__]
    elif isinstance(owner, types.ModuleType):
        candidates.append(owner.__name__)
    for module in dict.fromkeys(candidates):
        if (
            isinstance(module, str)
            and module != "__main__"
            and _same(getattr(sys.modules.get(module), name, _MISSING), value)
        ):
            return module, name
    return None


def _is_ipython_builtin(name: str, value) -> bool:
    """A builtin, or IPython's stand-in for it (its ``open``): handler.py has the real one."""
    real = getattr(builtins, name, _MISSING)
    if real is _MISSING:
        return False
    if value is real:
        return True
    definer = str((getattr(value, "__globals__", None) or {}).get("__name__", ""))
    return getattr(value, "__wrapped__", None) is real and definer.split(".")[0] in (
        "IPython",
        "ipykernel",
    )


class _Resolver:
    """Walks the used names of a source and its dependencies, filling a CapturedFunction."""

    def __init__(self, captured: CapturedFunction, namespace: dict, history: list[str]):
        self.captured = captured
        self.namespace = namespace
        self.history = _History(history)
        self.done: set[str] = set()
        self.statements_done: set[int] = set()

    def resolve(self, source: str, tree: ast.Module) -> None:
        self._note_imports(tree)
        for name in sorted(free_globals(source)):
            self._resolve_name(name)

    def _resolve_name(self, name: str) -> None:
        if name in self.done:
            return
        self.done.add(name)
        if name in _IPYTHON_NAMES:
            raise CaptureError(
                f"The cell uses {name!r}, an IPython name that does not exist in a function.",
                hint="Use a variable of your own instead.",
            )
        if name not in self.namespace:
            if hasattr(builtins, name):
                return
            raise CaptureError(
                f"The cell uses the name {name!r}, which is not defined in the kernel.",
                hint="Run the cell that defines it first, or define it in this cell.",
            )
        value = self.namespace[name]
        if _is_ipython_builtin(name, value):
            return
        own_import = self.history.import_of(name, value)
        if own_import:
            self.captured.imports.append(own_import[0])
            self._note_module(own_import[1])
            return
        if isinstance(value, types.ModuleType):
            self._add_module_import(name, value)
            return
        defined_here = getattr(value, "__module__", None) == "__main__"
        if defined_here and (
            isinstance(value, (types.FunctionType, type)) or _is_wrapped_definition(value)
        ):
            self._add_definition(name, value)
            return
        owner = None if defined_here else _owner_import(value)
        if owner:
            self._add_from_import(name, *owner)
            return
        if isinstance(value, (types.FunctionType, type)) and not defined_here:
            module, qualname = value.__module__, value.__qualname__
            raise CaptureError(
                f"{name!r} ({module}.{qualname}) cannot be imported by name in the function.",
                hint=f"Use it through its module (e.g. `import {str(module).split('.')[0]}`).",
            )
        simple = _is_simple_constant(value)
        text = repr(value) if simple else ""
        if simple and len(text) <= MAX_CONSTANT_BYTES:
            self.captured.constants.append(f"{name} = {text}")
        elif self._add_assignment(name, value):
            return
        elif simple:
            raise CaptureError(
                f"{name!r} is a {type(value).__name__} of {len(text):,} characters, too "
                f"large to write into the function's code (limit {MAX_CONSTANT_BYTES:,}).",
                hint=_BY_REFERENCE,
            )
        elif _has_non_finite(value):
            raise CaptureError(
                f"{name!r} is or holds a nan or inf float, which has no literal form to write "
                "into the function's code.",
                hint=f"Set it inside the function (e.g. `{name} = math.nan`, with `import math`), "
                "or send it in the input.",
            )
        else:
            raise CaptureError(
                f"{name!r} is {_describe(value)}, which cannot be captured into the function: "
                "no top-level statement that builds it (such as "
                f"`{name} = ...`) was found in the notebook's cells to re-run there.",
                hint=_uncapturable_hint(value, name),
            )

    def _add_assignment(self, name: str, value) -> bool:
        """Re-run the top-level assignment that built ``name`` (``T = Template("...")``).

        Returns False when the history holds no statement binding ``name``.

        Raises:
            CaptureError: the statement cannot be re-run to the same value, or what it uses
                cannot be captured.
        """
        found = self.history.assignment(name)
        if found is None:
            return False
        index, cell, node = found
        source = ast.get_source_segment(cell, node) or ""
        shown = source.splitlines()[0] + (" …" if "\n" in source else "")
        problem = self._assignment_problem(name, index, node)
        if problem:
            if "later statement" in problem:
                extra = (
                    " If the function needs the changed object (a trained model), save it "
                    "where the function can read it and load it there (pass it by reference)."
                )
            elif "open()" in problem or "notebook-local" in problem or "read" in problem:
                extra = (
                    " For a small file, read it into a constant in a cell of its own "
                    f"(`TEXT = Path('template.html').read_text()`) and build {name!r} from that "
                    f"(`{name} = ...(TEXT)`): the constant is written into the function."
                )
            else:
                extra = ""
            raise CaptureError(
                f"{name!r} is {_describe(value)} built by `{shown}` in an earlier cell, which "
                f"{problem}; re-running it in the function would not give the same value.",
                hint=_uncapturable_hint(value, name) + extra,
            )
        if index in self.statements_done:
            return True
        self.statements_done.add(index)
        try:
            self.resolve(source, ast.parse(source))
        except CaptureError as err:
            raise CaptureError(
                f"{name!r} is built by `{shown}` in an earlier cell, which the function re-runs, "
                f"but: {err.message}",
                hint=err.hint,
            ) from None
        self.captured.definitions.append(source)
        return True

    def _assignment_problem(self, name: str, index: int, node: ast.stmt) -> str | None:
        """Why re-running ``node`` would not rebuild ``name``'s value, or None."""
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            return "is not an assignment (the value was last bound by it)"
        if not all(_plain_target(t) for t in targets):
            return "also assigns to an attribute or item"
        for other in sorted(self.history.bound[index] - {name}):
            latest = self.history.assignment(other)
            if latest is not None and latest[0] > index:
                return f"also sets {other!r}, which a later statement sets again"
        if name in self.history.set_by_functions:
            return f"is not the only place it is set (a function sets it with `global {name}`)"
        if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(value)):
            return f"uses the earlier value of {name!r}"
        for sub in ast.walk(value):
            if isinstance(sub, ast.Call) and _call_name(sub) in _OUTSIDE_CALLS:
                return f"calls {_call_name(sub)}() (files, the network or other processes)"
            if isinstance(sub, ast.Name) and sub.id in self.namespace:
                used = self.namespace[sub.id]
                module = used.__name__ if isinstance(used, types.ModuleType) else ""
                module = module or getattr(used, "__module__", None) or ""
                module = module.split(".")[0] if isinstance(module, str) else ""
                if module in _OUTSIDE_MODULES:
                    return f"uses the {module} module (the network or other processes)"
        files = local_files(value)
        if files:
            return f"reads the notebook-local {_quoted(files)}"
        checked, mentioned = None, False
        for cell, later in self.history.statements[index + 1 :]:
            if cell is not checked:  # a cell that does not mention the name cannot change it
                checked, mentioned = cell, name in cell
            if mentioned and _changes(later, name):
                text = (ast.get_source_segment(cell, later) or "").splitlines()[0]
                return (
                    f"is not the last word: a later statement, `{text}`, may change it "
                    "(a call whose result is not used, or an assignment to an attribute or item)"
                )
        return None

    def _add_module_import(self, name: str, module: types.ModuleType) -> None:
        full = module.__name__
        if name == full:
            self.captured.imports.append(f"import {full}")
        elif "." in full and full.rsplit(".", 1)[1] == name:
            parent, child = full.rsplit(".", 1)
            self.captured.imports.append(f"from {parent} import {child}")
        else:
            self.captured.imports.append(f"import {full} as {name}")
        self._note_module(full)

    def _add_from_import(self, name: str, module: str, attr: str) -> None:
        alias = "" if name == attr else f" as {name}"
        self.captured.imports.append(f"from {module} import {attr}{alias}")
        self._note_module(module)

    def _add_definition(self, name: str, obj) -> None:
        source = self._definition_source(name, obj)
        tree = parse_cell(source, where=f"the definition of {name!r}")
        self.resolve(source, tree)
        self.captured.definitions.append(source)

    def _definition_source(self, name: str, obj) -> str:
        """The latest top-level ``def``/``class`` of ``name`` in the cell history."""
        source = self.history.definition(name)
        if source is not None:
            return source
        try:
            return inspect.getsource(obj)
        except (OSError, TypeError):
            raise CaptureError(
                f"The source of {name!r} cannot be found (it was not defined by a `def` or "
                "`class` statement in this notebook's cells).",
                hint="Define it with def/class in a cell, or in this cell.",
            ) from None

    def _note_imports(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._note_module(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                self._note_module(node.module)

    def _note_module(self, dotted: str) -> None:
        top = dotted.split(".")[0]
        if top in sys.stdlib_module_names or top in self.captured.modules:
            return
        self.captured.modules.add(top)
        path = local_module_path(top)
        if path:
            self.captured.local_modules[top] = path
            # What the user's own module imports must be installed in the image too.
            files = sorted(Path(path).rglob("*.py")) if os.path.isdir(path) else [Path(path)]
            for file in files:
                self._note_imports(parse_cell(file.read_text(), where=str(file)))


_BY_REFERENCE = (
    "Pass data by reference instead: put it where the function can read it (a file on "
    "shared storage, an object store, a URL), send its location in the input, "
    'e.g. {"path": "/data/run42/frame.npy"}, and load it inside the function.'
)


def free_globals(source: str) -> set[str]:
    """Global names a module's code reads but does not define itself."""
    top = symtable.symtable(source, "<cell>", "exec")
    defined = {
        sym.get_name()
        for sym in top.get_symbols()
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace()
    }
    used: set[str] = set()
    stack = [top]
    while stack:
        table = stack.pop()
        used.update(
            sym.get_name()
            for sym in table.get_symbols()
            if sym.is_referenced() and (sym.is_global() or table is top)
        )
        stack.extend(table.get_children())
    return used - defined


def _plain_target(target: ast.expr) -> bool:
    """A name, or a tuple/list of names: an assignment that binds without changing objects."""
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, ast.Starred):
        return _plain_target(target.value)
    return isinstance(target, (ast.Tuple, ast.List)) and all(map(_plain_target, target.elts))


def _root_name(node: ast.AST) -> str | None:
    """``a`` for ``a``, ``a.b[c]``, ``a.b().c``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _only_reads(call: ast.Call) -> bool:
    """Whether every call in a chain like ``t.render(x).strip()`` is a reading method."""
    node: ast.AST = call
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Attribute) and node.func.attr in _QUERY_METHODS):
                return False
            node = node.func
        else:
            node = node.value
    return True


def _changes(statement: ast.stmt, name: str) -> bool:
    """Whether a later statement may change the object ``name`` holds.

    An assignment or deletion of one of its attributes or items, or a call whose result is
    discarded (called for its effect) on it or given it (``model.fit(X)``, ``shuffle(deck)``),
    unless it only reads (``_QUERY_METHODS``: a cell trying ``TEMPLATE.render(...)`` out).
    """
    for node in _module_level(statement):
        if (
            isinstance(node, (ast.Attribute, ast.Subscript))
            and isinstance(node.ctx, (ast.Store, ast.Del))
            and _root_name(node) == name
        ):
            return True
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            if _root_name(call.func) == name and not _only_reads(call):
                return True
            given = [*call.args, *(k.value for k in call.keywords)]
            if _call_name(call) not in _SHOW_CALLS and any(
                isinstance(arg, ast.Name) and arg.id == name for arg in given
            ):
                return True
    return False


def _is_simple_constant(value, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if type(value) in _LITERAL_TYPES:
        # nan and inf have no literal form that handler.py could contain.
        return not isinstance(value, (float, complex)) or all(
            w not in repr(value) for w in ("nan", "inf")
        )
    if type(value) in (list, tuple, set, frozenset):
        return all(_is_simple_constant(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(
            _is_simple_constant(k, depth + 1) and _is_simple_constant(v, depth + 1)
            for k, v in value.items()
        )
    return False


def _is_wrapped_definition(value) -> bool:
    """A notebook function behind a decorator that returns a wrapper object (lru_cache)."""
    return (
        callable(value)
        and getattr(value, "__module__", None) == "__main__"
        and isinstance(getattr(value, "__wrapped__", None), types.FunctionType)
    )


def _has_non_finite(value, depth: int = 0) -> bool:
    """Whether a float, complex or container of them holds a nan or inf."""
    if depth > 20:
        return False
    if type(value) in (float, complex):
        return not cmath.isfinite(value)
    if type(value) in (list, tuple, set, frozenset):
        return any(_has_non_finite(v, depth + 1) for v in value)
    if type(value) is dict:
        return any(_has_non_finite(v, depth + 1) for v in value.values())
    return False


def _uncapturable_hint(value, name: str) -> str:
    if isinstance(value, io.IOBase):
        return (
            "An open file cannot travel with the function: pass it by reference instead, "
            'i.e. send its path in the input (e.g. {"path": "/data/run42.csv"}) and open it '
            "inside the function."
        )
    rebuild = (
        f"Build {name!r} inside the function cell (or in a function it calls), or re-run the "
        f"code that builds it (`{name} = ...`, from its inputs alone) in a cell of its own and "
        "run this cell again. Modules, functions, classes and simple constants (numbers, "
        "strings, and lists/tuples/dicts of them) are captured as they are; anything else "
        "is built again in the function by re-running its defining statement."
    )
    return f"{rebuild} For data: {_BY_REFERENCE}" if _is_data(value) else rebuild


def _is_data(value) -> bool:
    return (
        hasattr(value, "nbytes")
        or hasattr(value, "__array__")
        or isinstance(value, (list, tuple, dict, set, bytes, bytearray))
    )


def _describe(value) -> str:
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    if isinstance(value, io.IOBase):
        return f"an open file ({kind})"
    if isinstance(value, socket.socket):
        return f"a socket ({kind})"
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return f"a {kind} of {nbytes / 1e6:.1f} MB"
    return f"a {kind} object"


def local_module_path(top: str) -> str | None:
    """The file or package folder of ``top`` when it is the user's own code, not a distribution.

    Raises:
        CaptureError: the module is not installed in the kernel at all.
    """
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise CaptureError(
            f"The code imports {top!r}, which is not installed in this kernel.",
            hint=f"Install it (`%pip install {top}`) and run the cell again, so the function "
            "gets the version you tested with.",
        )
    if top in _distributions() or top in _NOT_DISTRIBUTIONS:
        return None
    origin = spec.origin if spec.origin not in (None, "built-in", "frozen") else None
    if origin is None:
        return None
    site_dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    if any(origin.startswith(d) for d in site_dirs):
        return None
    return os.path.dirname(origin) if origin.endswith("__init__.py") else origin


_dist_cache: tuple[tuple, dict[str, list[str]]] | None = None
#: Distribution name (normalised) -> the pins of it and everything it requires; reset with
#: ``_dist_cache``.
_closure_cache: dict[str, dict[str, str]] = {}


def _path_fingerprint() -> tuple:
    """The import path and its folders' modification times: a ``%pip install`` changes it."""
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, None))
    return tuple(stamps)


def _distributions() -> dict[str, list[str]]:
    """Top-level module -> distributions; reread only when the import path changed (reading
    every installed distribution's metadata costs ~100 ms in a full environment)."""
    global _dist_cache
    fingerprint = _path_fingerprint()
    if _dist_cache is None or _dist_cache[0] != fingerprint:
        _dist_cache = (fingerprint, importlib.metadata.packages_distributions())
        _closure_cache.clear()
    return _dist_cache[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(dist_name: str) -> dict[str, str]:
    """``name==version`` of ``dist_name`` and of every distribution it requires, transitively.

    ``Requires-Dist`` markers are evaluated against this kernel's environment, with the extras
    each requirement asks for, so the image gets what the kernel has installed, not newer.
    """
    key = _normalise(dist_name)
    if key in _closure_cache:
        return _closure_cache[key]
    environment = default_environment()
    pins: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    queue: list[tuple[str, frozenset[str]]] = [(dist_name, frozenset())]
    while queue:
        name, extras = queue.pop()
        wanted = {e for e in extras if (_normalise(name), e) not in seen}
        if _normalise(name) in pins and not wanted:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed: the kernel runs without it
        real = dist.metadata["Name"] or name
        if _normalise(real) in _NOT_PINNED:
            continue
        pins[_normalise(real)] = f"{real}=={dist.version}"
        seen.update((_normalise(name), e) for e in {"", *extras})
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not any(
                req.marker.evaluate({**environment, "extra": extra}) for extra in {"", *extras}
            ):
                continue
            queue.append((req.name, frozenset(req.extras)))
    _closure_cache[key] = pins
    return pins


def pinned_requirements(modules: set[str]) -> list[str]:
    """``name==version`` for the distributions that provide ``modules`` in this kernel and
    everything they require, so a rebuild reproduces the kernel's environment."""
    pins = {}
    for top in sorted(modules):
        if top in _NOT_DISTRIBUTIONS:
            continue
        for dist in _distributions().get(top, []):
            pins.update(_closure(dist))
    return [pins[k] for k in sorted(pins)]
