"""Merging of still-frame intensities by Monte-Carlo averaging (Kirian et al. 2010, Acta Cryst.
A66, 5) and the half-data-set correlation CC½ (Karplus & Diederichs 2012, Science 336, 1030).

Every observation is moved to its reflection's asymmetric unit under the Laue group and the
observations of each unique reflection are averaged: partialities and crystal scales average
out over many crystals instead of being modelled. CC½ splits the observations of each
reflection randomly into two halves, merges each and correlates the two merged sets.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .stream import read_stream
from .symmetry import asymmetric_indices, default_laue_group


def _group_means(group: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    count = np.bincount(group, minlength=size)
    return np.bincount(group, weights=values, minlength=size) / np.maximum(count, 1), count


def half_split(group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random half (0 or 1) for each observation, balanced within each reflection."""
    order = np.lexsort((rng.random(len(group)), group))
    first = np.searchsorted(group[order], group[order], side="left")
    rank = np.arange(len(group)) - first
    half = np.empty(len(group), dtype=int)
    half[order] = rank % 2
    return half


def correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's correlation, or None when there is too little to correlate."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def merge_observations(
    hkl: np.ndarray,
    intensity: np.ndarray,
    laue_group: str,
    resolution: np.ndarray | None = None,
    seed: int = 0,
    shells: int = 5,
) -> dict:
    """Merge observations (n×3 Miller indices, n intensities) in a Laue group.

    Args:
        hkl: Miller indices of each observation.
        intensity: each observation's intensity.
        laue_group: see ``symmetry.LAUE_GROUPS``.
        resolution: 1/d (Å⁻¹) of each observation, for CC½ in resolution shells; none if None.
        seed: the random half split.
        shells: number of resolution shells, equal in count of unique reflections.

    Returns:
        {"laue_group", "reflections": [[h, k, l, I, sigma(I), nmeas], ...] (asymmetric unit),
        "observations", "unique", "cc_half", "shells": [{"d_max", "d_min", "unique",
        "cc_half"}, ...]}.
    """
    hkl = np.asarray(hkl, dtype=int).reshape(-1, 3)
    intensity = np.asarray(intensity, dtype=float)
    unique, group = np.unique(asymmetric_indices(hkl, laue_group), axis=0, return_inverse=True)
    group = group.ravel()
    mean, count = _group_means(group, intensity, len(unique))
    squares, _ = _group_means(group, intensity**2, len(unique))
    spread = np.sqrt(np.maximum(squares - mean**2, 0.0) * count / np.maximum(count - 1, 1))
    sigma = spread / np.sqrt(count)

    half = half_split(group, np.random.default_rng(seed))
    first, first_count = _group_means(group[half == 0], intensity[half == 0], len(unique))
    second, second_count = _group_means(group[half == 1], intensity[half == 1], len(unique))
    both = (first_count > 0) & (second_count > 0)
    result = {
        "laue_group": laue_group,
        "observations": int(len(intensity)),
        "unique": int(len(unique)),
        "cc_half": correlation(first[both], second[both]),
        "shells": [],
        "reflections": [
            [*map(int, miller), round(float(i), 2), round(float(s), 2), int(n)]
            for miller, i, s, n in zip(unique, mean, sigma, count, strict=True)
        ],
    }
    if resolution is not None and both.sum() >= shells * 3:
        inverse_d = np.zeros(len(unique))
        inverse_d[group] = np.asarray(resolution, dtype=float)
        used = np.flatnonzero(both)
        for part in np.array_split(used[np.argsort(inverse_d[used])], shells):
            result["shells"].append(
                {
                    "d_max": round(float(1 / inverse_d[part].min()), 3),
                    "d_min": round(float(1 / inverse_d[part].max()), 3),
                    "unique": int(len(part)),
                    "cc_half": correlation(first[part], second[part]),
                }
            )
    return result


def merge_crystals(crystals: Iterable[dict], laue_group: str, seed: int = 0) -> dict:
    """Merge the ``crystals`` entries of ``index`` results (their reflections and bases)."""
    hkl, intensity, resolution = [], [], []
    for crystal in crystals:
        reflections = np.array(crystal["reflections"], dtype=float).reshape(-1, 9)
        miller = reflections[:, :3].astype(int)
        reciprocal = np.linalg.inv(np.array(crystal["basis"]))
        hkl.append(miller)
        intensity.append(reflections[:, 3])
        resolution.append(np.linalg.norm(miller @ reciprocal.T, axis=1))
    if not hkl:
        return merge_observations(np.zeros((0, 3)), np.zeros(0), laue_group, seed=seed)
    return merge_observations(
        np.concatenate(hkl), np.concatenate(intensity), laue_group, np.concatenate(resolution), seed
    )


def merge(stream_file: str | Path, laue_group: str | None = None, seed: int = 0) -> dict:
    """Merge the crystals of a CrystFEL stream (data by reference: the stream's path).

    Args:
        stream_file: a stream as ``stream.write_stream`` writes it (several may be concatenated).
        laue_group: the Laue group to merge in (CrystFEL's ``-y``); from the stream's cell
            (its ``lattice_type`` and ``unique_axis``) when None.
        seed: the random half split for CC½.

    Returns:
        ``merge_observations``' result.
    """
    stream = read_stream(stream_file)
    if laue_group is None:
        cell = stream["cell"]
        laue_group = default_laue_group(cell.lattice_type, cell.unique_axis)
    crystals = [crystal for chunk in stream["chunks"] for crystal in chunk["crystals"]]
    return merge_crystals(crystals, laue_group, seed)
