"""Pinned requirements: the kernel's exact versions of what a function imports, and of
everything those distributions require, so a rebuild reproduces the kernel's environment.

Reading every installed distribution's metadata costs ~100 ms in a full environment,
and capture runs on every edit: the answers are cached until the import path changes
(a ``%pip install`` changes a site folder's modification time).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
import sysconfig

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from .errors import CaptureError

#: Top-level modules never pinned (they are the runtime's business), and their distributions.
_NOT_DISTRIBUTIONS = {"jupyter_faas"}
_NOT_PINNED = {"jupyter-faas"}


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
