"""Capture one notebook cell as self-contained function source.

The cell is parsed, the global names it uses are found by static analysis
(``symtable``), and each one is resolved in the live kernel namespace: modules
become imports, notebook functions and classes bring their own source (taken
from the cell history, then analysed the same way), simple constants are
written as literals. Anything else is refused with a message that names the
name, so the scientist never gets a function that fails only in the container.
"""

from __future__ import annotations

import ast
import builtins
import cmath
import importlib.metadata
import importlib.util
import inspect
import io
import os
import socket
import symtable
import sys
import sysconfig
import types
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CaptureError

#: Largest literal (length of its repr) written into handler.py for a captured constant.
MAX_CONSTANT_BYTES = 64 * 1024

_LITERAL_TYPES = (type(None), bool, int, float, complex, str, bytes)
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_i", "_ii"}
_NOT_DISTRIBUTIONS = {"jupyter_faas"}


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

    def source(self) -> str:
        """The full text of handler.py."""
        parts = []
        # Imports first even when the cell repeats one: handler.py reads top to bottom.
        imports = list(dict.fromkeys(self.imports))
        if imports:
            parts.append("\n".join(imports))
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
    return captured


class _Resolver:
    """Walks the used names of a source and its dependencies, filling a CapturedFunction."""

    def __init__(self, captured: CapturedFunction, namespace: dict, history: list[str]):
        self.captured = captured
        self.namespace = namespace
        self.history = history
        self.done: set[str] = set()

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
        if isinstance(value, types.ModuleType):
            self._add_module_import(name, value)
        elif isinstance(value, (types.FunctionType, type)) or _is_wrapped_definition(value):
            self._add_definition(name, value)
        elif _is_importable(value) or (
            isinstance(value, types.BuiltinFunctionType) and value.__module__
        ):
            self._add_from_import(name, value)
        elif _is_simple_constant(value):
            text = repr(value)
            if len(text) > MAX_CONSTANT_BYTES:
                raise CaptureError(
                    f"{name!r} is a {type(value).__name__} of {len(text):,} characters, too "
                    f"large to write into the function's code (limit {MAX_CONSTANT_BYTES:,}).",
                    hint=_BY_REFERENCE,
                )
            self.captured.constants.append(f"{name} = {text}")
        elif _has_non_finite(value):
            raise CaptureError(
                f"{name!r} is or holds a nan or inf float, which has no literal form to write "
                "into the function's code.",
                hint=f"Set it inside the function (e.g. `{name} = math.nan`, with `import math`), "
                "or send it in the input.",
            )
        else:
            raise CaptureError(
                f"{name!r} is {_describe(value)}, which cannot be captured into the function.",
                hint=_uncapturable_hint(value),
            )

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

    def _add_from_import(self, name: str, obj) -> None:
        module, qualname = obj.__module__, obj.__qualname__
        if "." in qualname or getattr(sys.modules.get(module), qualname, None) is not obj:
            raise CaptureError(
                f"{name!r} ({module}.{qualname}) cannot be imported by name in the function.",
                hint=f"Use it through its module (e.g. `import {module.split('.')[0]}`).",
            )
        alias = "" if name == qualname else f" as {name}"
        self.captured.imports.append(f"from {module} import {qualname}{alias}")
        self._note_module(module)

    def _add_definition(self, name: str, obj) -> None:
        if obj.__module__ != "__main__":
            self._add_from_import(name, obj)
            return
        source = self._definition_source(name, obj)
        tree = parse_cell(source, where=f"the definition of {name!r}")
        self.resolve(source, tree)
        self.captured.definitions.append(source)

    def _definition_source(self, name: str, obj) -> str:
        """The latest top-level ``def``/``class`` of ``name`` in the cell history."""
        for cell in reversed(self.history):
            try:
                tree = ast.parse(cell)
            except SyntaxError:
                continue
            for node in reversed(tree.body):
                if (
                    isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and node.name == name
                ):
                    start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                    lines = cell.splitlines()[start - 1 : node.end_lineno]
                    return "\n".join(lines)
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


def _is_importable(value) -> bool:
    """A callable that ``from MODULE import NAME`` gives back (numpy's mean, ufuncs)."""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    return (
        callable(value)
        and isinstance(module, str)
        and module != "__main__"
        and isinstance(qualname, str)
        and "." not in qualname
        and getattr(sys.modules.get(module), qualname, None) is value
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


def _uncapturable_hint(value) -> str:
    if isinstance(value, io.IOBase):
        return (
            "An open file cannot travel with the function: pass it by reference instead, "
            'i.e. send its path in the input (e.g. {"path": "/data/run42.csv"}) and open it '
            "inside the function."
        )
    if _is_data(value):
        return _BY_REFERENCE
    return (
        "Only modules, functions, classes and simple constants (numbers, strings, and "
        "lists/tuples/dicts of them) are captured. Create the object inside the function, "
        "or pass what it needs in the input."
    )


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
    return _dist_cache[1]


def pinned_requirements(modules: set[str]) -> list[str]:
    """``name==version`` for the distributions that provide ``modules`` in this kernel."""
    pins = {}
    for top in sorted(modules):
        if top in _NOT_DISTRIBUTIONS:
            continue
        for dist in _distributions().get(top, []):
            try:
                pins[dist.lower()] = f"{dist}=={importlib.metadata.version(dist)}"
            except importlib.metadata.PackageNotFoundError:
                continue
    return [pins[k] for k in sorted(pins)]
