"""Laue groups acting on Miller indices, to put equivalent reflections together.

A Laue group is a point group plus the inversion (Friedel's law). Each is generated here from
its generators as integer matrices acting on (h, k, l); names are CrystFEL's (its ``-y``
option): ``2/m_uab`` is 2/m with unique axis b.
"""

from __future__ import annotations

import numpy as np

from .errors import CellError

_INVERSION = -np.eye(3, dtype=int)
_TWOFOLD = {
    "a": np.diag([1, -1, -1]),
    "b": np.diag([-1, 1, -1]),
    "c": np.diag([-1, -1, 1]),
}
_FOURFOLD_C = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
_TWOFOLD_DIAGONAL = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]])

_GENERATORS = {
    "-1": [_INVERSION],
    "2/m_uaa": [_TWOFOLD["a"], _INVERSION],
    "2/m_uab": [_TWOFOLD["b"], _INVERSION],
    "2/m_uac": [_TWOFOLD["c"], _INVERSION],
    "mmm": [_TWOFOLD["a"], _TWOFOLD["b"], _INVERSION],
    "4/m": [_FOURFOLD_C, _INVERSION],
    "4/mmm": [_FOURFOLD_C, _TWOFOLD_DIAGONAL, _INVERSION],
}
LAUE_GROUPS = tuple(_GENERATORS)


def operators(laue_group: str) -> np.ndarray:
    """All operators of a Laue group (n×3×3 integer matrices), by closure of its generators."""
    if laue_group not in _GENERATORS:
        raise CellError(f"Laue group '{laue_group}' is not one of {', '.join(LAUE_GROUPS)}")
    group = [np.eye(3, dtype=int)]
    frontier = list(group)
    while frontier:
        new = []
        for op in frontier:
            for generator in _GENERATORS[laue_group]:
                product = generator @ op
                if not any(np.array_equal(product, known) for known in group):
                    group.append(product)
                    new.append(product)
        frontier = new
    return np.array(group)


def default_laue_group(lattice_type: str, unique_axis: str = "b") -> str:
    """The highest Laue group of a lattice, which the simulation also uses."""
    groups = {
        "triclinic": "-1",
        "monoclinic": f"2/m_ua{unique_axis}",
        "orthorhombic": "mmm",
        "tetragonal": "4/mmm",
    }
    if lattice_type not in groups:
        raise CellError(
            f"lattice_type '{lattice_type}' is not supported here; "
            f"use one of {', '.join(groups)} or name a Laue group ({', '.join(LAUE_GROUPS)})"
        )
    return groups[lattice_type]


def asymmetric_indices(hkl: np.ndarray, laue_group: str) -> np.ndarray:
    """One representative of each reflection's equivalents: the largest (h, k, l) among them."""
    ops = operators(laue_group)
    equivalents = np.einsum("oij,nj->noi", ops, np.asarray(hkl, dtype=int))  # n×ops×3
    # Lexicographic maximum over the operators, by a combined integer key.
    span = int(np.abs(equivalents).max(initial=0)) + 1
    keys = (equivalents[..., 0] * 2 * span + equivalents[..., 1]) * 2 * span + equivalents[..., 2]
    best = keys.argmax(axis=1)
    return equivalents[np.arange(len(equivalents)), best]
