"""Notebook-local files a function reads: found in its code, taken along in its bundle.

A function that opens ``template.html`` beside the notebook would fail in its
container; capture finds relative path literals that name existing files in the
kernel's working directory and takes them along (up to ``MAX_DATA_BYTES``), or
says to pass larger data by reference.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from .errors import CaptureError

#: Largest total size of the notebook-local files a function may take along in its bundle.
MAX_DATA_BYTES = 1024 * 1024

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

#: What to say where data cannot travel with the code.
BY_REFERENCE = (
    "Pass data by reference instead: put it where the function can read it (a file on "
    "shared storage, an object store, a URL), send its location in the input, "
    'e.g. {"path": "/data/run42/frame.npy"}, and load it inside the function.'
)


def take_data_files(captured) -> None:
    """Find the notebook-local files ``captured`` (a CapturedFunction) names; take them along
    in its ``data_files``, or refuse saying how."""
    code = "\n\n".join([*captured.constants, *captured.definitions, captured.cell_source])
    found = local_files(ast.parse(code))
    if not found:
        return
    outside = [rel for rel in found if rel.startswith("..")]
    if outside:
        raise CaptureError(
            f"The function reads {quoted(outside)}, outside the notebook's folder "
            f"({os.getcwd()}): such files are not taken into the function's bundle.",
            hint=BY_REFERENCE,
        )
    sizes = {rel: _tree_size(path) for rel, path in found.items()}
    listing = ", ".join(f"{rel!r} ({_size(size)})" for rel, size in sizes.items())
    if sum(sizes.values()) > MAX_DATA_BYTES:
        raise CaptureError(
            f"The function reads notebook-local files {listing}: together more than the "
            f"{_size(MAX_DATA_BYTES)} a function takes along in its bundle.",
            hint=BY_REFERENCE,
        )
    captured.data_files.update(found)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} kB"


def quoted(items) -> str:
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
            and call_name(node) in _PATH_CALLS
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
    name = call_name(node)
    if name == "open" and node.args:
        mode = node.args[1] if len(node.args) > 1 else None
        mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
        if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax"):
            return list(ast.walk(node.args[0]))
    if name in _WRITE_METHODS and isinstance(node.func, ast.Attribute):
        target = node.func.value if name in _PATH_WRITES else (node.args or [None])[0]
        return list(ast.walk(target)) if target is not None else []
    return []


def call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _path_text(node: ast.AST) -> str | None:
    """The path a constant expression spells: ``"a"``, ``Path("a") / "b"``, ``join("a", "b")``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _path_text(node.left), _path_text(node.right)
        return os.path.join(left, right) if left is not None and right is not None else None
    if isinstance(node, ast.Call) and call_name(node) in ("Path", "PurePath", "PosixPath", "join"):
        parts = [_path_text(arg) for arg in node.args]
        if parts and None not in parts and not node.keywords:
            return os.path.join(*parts)
    return None
