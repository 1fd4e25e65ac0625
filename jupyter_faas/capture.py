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
import inspect
import io
import os
import socket
import symtable
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from .datafiles import BY_REFERENCE, call_name, local_files, quoted, take_data_files
from .errors import CaptureError
from .pinning import local_module_path

#: Largest literal (length of its repr) written into handler.py for a captured constant.
MAX_CONSTANT_BYTES = 64 * 1024

_LITERAL_TYPES = (type(None), bool, int, float, complex, str, bytes)
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_i", "_ii"}

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
        imports = list(dict.fromkeys(self.imports + (["import os"] if self.data_files else [])))
        # An import the cell makes itself is left to the cell, unless something above the
        # cell needs its name while handler.py loads (a constant, a default, a class body).
        own = _import_keys(self.cell_source)
        early = _load_time_names(self.constants + self.definitions)
        if self.data_files:
            early.add("os")
        imports = [
            line
            for line in imports
            if not (_import_keys(line) <= own and not _import_names(line) & early)
        ]
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


def _import_keys(source: str) -> set[tuple]:
    """Each name a module's top-level imports bind, as (module, name, alias, level)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    keys: set[tuple] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            keys.update((a.name, None, a.asname, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            keys.update((node.module, a.name, a.asname, node.level) for a in node.names)
    return keys


def _import_names(source: str) -> set[str]:
    """The names an import statement binds."""
    return {
        alias or (module.split(".")[0] if name is None else name)
        for module, name, alias, _ in _import_keys(source)
    }


def _load_time_names(sources: list[str]) -> set[str]:
    """Names read while these statements run (not inside function bodies, which run later)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        for child in ast.iter_child_nodes(node):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and (
                child in getattr(node, "body", []) or child is getattr(node, "body", None)
            ):
                continue
            visit(child)

    for source in sources:
        try:
            visit(ast.parse(source))
        except SyntaxError:
            names.update(source.split())  # unparsable here: keep every import it might need
    return names


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
    take_data_files(captured)
    return captured


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
                hint=BY_REFERENCE,
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
            if isinstance(sub, ast.Call) and call_name(sub) in _OUTSIDE_CALLS:
                return f"calls {call_name(sub)}() (files, the network or other processes)"
            if isinstance(sub, ast.Name) and sub.id in self.namespace:
                used = self.namespace[sub.id]
                module = used.__name__ if isinstance(used, types.ModuleType) else ""
                module = module or getattr(used, "__module__", None) or ""
                module = module.split(".")[0] if isinstance(module, str) else ""
                if module in _OUTSIDE_MODULES:
                    return f"uses the {module} module (the network or other processes)"
        files = local_files(value)
        if files:
            return f"reads the notebook-local {quoted(files)}"
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
            if call_name(call) not in _SHOW_CALLS and any(
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
    return f"{rebuild} For data: {BY_REFERENCE}" if _is_data(value) else rebuild


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
