"""Known-cell indexing of still frames by a real-space grid search (Gildea et al. 2014, Acta
Cryst. D70, 2652), the method DIALS falls back to for stills when the cell is known.

Peaks become scattering vectors q. For each cell length L, directions t over a hemisphere are
scored by Σ cos(2π L t·q): a lattice vector of length L along t makes every L t·q an integer.
The best distinct directions are refined by least squares against the rounded projections;
triplets whose lengths and angles match the cell form candidate orientation matrices, scored
by how many peaks get near-integer indices. The best is refined (all nine elements: the
orientation and the cell) by linear least squares on its indexed peaks, and accepted as
CrystFEL accepts a solution: at least ``min_indexed`` and at least ``min_fraction`` of the
peaks indexed, and the refined cell within ``length_tolerance`` and ``angle_tolerance`` of the
target cell.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import CrystallographyError
from .geometry import UnitCell, hkl_within, read_cell, read_frames, read_geom
from .integrate import Rings, integrate, predict, profile_radius
from .peaks import PeakSearch, peak_list, peakfinder8


@dataclass(frozen=True)
class IndexingSettings:
    """How hard to search and what counts as a solution (CrystFEL's defaults where it has one)."""

    search_peaks: int = 40  # lowest-resolution peaks used by the grid search
    directions_per_length: int = 12  # distinct directions kept per cell length
    separation_degrees: float = 4.0  # between kept directions
    max_grid_points: int = 40000
    index_tolerance: float = 0.25  # largest |h − round(h)| of an indexed peak, per index
    min_indexed: int = 10
    min_fraction: float = 0.5
    length_tolerance: float = 0.05  # relative (CrystFEL: 5 %)
    angle_tolerance: float = 1.5  # degrees (CrystFEL: 1.5°)
    triplet_angle_tolerance: float = 4.0  # degrees, for candidate triplets before refinement


@dataclass(frozen=True)
class Solution:
    """A refined crystal: real-space rows a, b, c (Å, lab frame) and the peaks it explains."""

    basis: np.ndarray
    hkl: np.ndarray  # Miller indices of every peak (rounded)
    indexed: np.ndarray  # which peaks are indexed
    cell: UnitCell


@functools.lru_cache(maxsize=8)
def hemisphere(count: int) -> np.ndarray:
    """Nearly uniform unit vectors over the hemisphere z ≥ 0 (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    z = 1.0 - index / count
    phi = math.pi * (3.0 - math.sqrt(5.0)) * index
    r = np.sqrt(1.0 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1).astype(np.float32)


def fractional_error(fractional: np.ndarray) -> np.ndarray:
    """Distance of each fractional index from the nearest integer."""
    return np.abs(fractional - np.round(fractional))


def _refine_vector(q: np.ndarray, vector: np.ndarray, tolerance: float) -> np.ndarray | None:
    """Least-squares real-space vector v with v·q near the integers it rounds to."""
    for _ in range(4):
        projection = q @ vector
        near = fractional_error(projection) < tolerance
        target = np.round(projection[near])
        if near.sum() < 6 or not np.any(target):
            return None
        vector = np.linalg.lstsq(q[near], target, rcond=None)[0]
    return vector


def candidate_vectors(q: np.ndarray, length: float, settings: IndexingSettings) -> list[np.ndarray]:
    """Refined real-space vectors of about ``length`` Å, from the best grid-search directions."""
    search = q[np.argsort(np.linalg.norm(q, axis=1))[: settings.search_peaks]]
    q_max = float(np.linalg.norm(search, axis=1).max())
    step = 1.0 / (5.0 * length * q_max)  # radians: keeps the phase error of a peak below ~1 rad
    count = min(settings.max_grid_points, int(2 * math.pi / step**2))
    directions = hemisphere(count)
    # Only the distance to the nearest integer matters, so float32 is precise enough (and fast).
    projection = directions @ (length * search.T).astype(np.float32)
    score = np.cos(np.float32(2 * math.pi) * (projection - np.rint(projection))).sum(axis=1)
    best = directions[np.argsort(score)[::-1][: 50 * settings.directions_per_length]]
    # Greedy suppression of directions close (either way) to a better one.
    close = np.abs(best @ best.T) >= math.cos(math.radians(settings.separation_degrees))
    kept: list[np.ndarray] = []
    taken: list[int] = []
    for i in range(len(best)):
        if not close[i, taken].any():
            taken.append(i)
            kept.append(best[i])
            if len(kept) == settings.directions_per_length:
                break
    vectors = []
    for direction in kept:
        vector = _refine_vector(q, length * direction, settings.index_tolerance)
        if vector is not None and abs(np.linalg.norm(vector) / length - 1) < 0.1:
            vectors.append(vector)
    return vectors


def _angles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angles in degrees between every row of ``u`` and every row of ``v``."""
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip(u @ v.T, -1.0, 1.0)))


def triplets(candidates: list[np.ndarray], cell: UnitCell, tolerance: float) -> np.ndarray:
    """Right-handed bases (n×3×3) from candidate vectors whose angles match the cell's.

    ``candidates`` holds the vectors (rows) for a, b and c. A vector may enter with either
    sign, which turns its angles θ into 180° − θ; the handedness then fixes the overall sign.
    """
    a, b, c = candidates
    if not (len(a) and len(b) and len(c)):
        return np.zeros((0, 3, 3))
    ab, ac, bc = _angles(a, b), _angles(a, c), _angles(b, c)
    bases = []
    for sign_b in (1, -1):
        for sign_c in (1, -1):
            gamma = ab if sign_b > 0 else 180 - ab
            beta = ac if sign_c > 0 else 180 - ac
            alpha = bc if sign_b * sign_c > 0 else 180 - bc
            match = (
                (np.abs(gamma - cell.gamma) <= tolerance)[:, :, None]
                & (np.abs(beta - cell.beta) <= tolerance)[:, None, :]
                & (np.abs(alpha - cell.alpha) <= tolerance)[None, :, :]
            )
            i, j, k = np.nonzero(match)
            bases.append(np.stack([a[i], sign_b * b[j], sign_c * c[k]], axis=1))
    bases = np.concatenate(bases)
    determinant = np.linalg.det(bases)
    volume = np.prod(np.linalg.norm(bases, axis=2), axis=1)
    bases = bases[np.abs(determinant) > 0.05 * volume]  # not (nearly) coplanar
    return bases * np.sign(np.linalg.det(bases))[:, None, None]


def refine_basis(
    q: np.ndarray, basis: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Refine all nine elements of the basis by least squares on the indexed peaks."""
    for _ in range(3):
        fractional = q @ basis.T
        indexed = np.all(fractional_error(fractional) < tolerance, axis=1)
        if indexed.sum() < 4:
            break
        basis = np.linalg.lstsq(q[indexed], np.round(fractional[indexed]), rcond=None)[0].T
    fractional = q @ basis.T
    return basis, np.all(fractional_error(fractional) < tolerance, axis=1)


def cell_matches(refined: UnitCell, target: UnitCell, settings: IndexingSettings) -> bool:
    """CrystFEL's cell check: every length within a fraction, every angle within degrees."""
    lengths = all(
        abs(x / y - 1) <= settings.length_tolerance
        for x, y in zip(refined.parameters[:3], target.parameters[:3], strict=True)
    )
    angles = all(
        abs(x - y) <= settings.angle_tolerance
        for x, y in zip(refined.parameters[3:], target.parameters[3:], strict=True)
    )
    return lengths and angles


def index_peaks(q: np.ndarray, cell: UnitCell, settings: IndexingSettings) -> Solution | None:
    """Index one still frame's scattering vectors (n×3, Å⁻¹) with a known cell, or None."""
    if len(q) < settings.min_indexed:
        return None
    by_length: dict[float, list[np.ndarray]] = {}
    candidates = []
    for length in (cell.a, cell.b, cell.c):
        same = next((k for k in by_length if abs(k / length - 1) < 0.01), None)
        if same is None:
            by_length[length] = candidate_vectors(q, length, settings)
            same = length
        candidates.append(by_length[same])
    bases = triplets(
        [np.array(v).reshape(-1, 3) for v in candidates], cell, settings.triplet_angle_tolerance
    )
    if len(bases) == 0:
        return None
    fractional = np.einsum("nj,bij->bni", q, bases)
    counts = np.all(fractional_error(fractional) < settings.index_tolerance, axis=2).sum(axis=1)
    best = bases[int(np.argmax(counts))]
    basis, indexed = refine_basis(q, best, settings.index_tolerance)
    refined = UnitCell.from_basis(basis, like=cell)
    enough = indexed.sum() >= max(settings.min_indexed, settings.min_fraction * len(q))
    if not enough or not cell_matches(refined, cell, settings):
        return None
    hkl = np.round(q @ basis.T).astype(int)
    return Solution(basis=basis, hkl=hkl, indexed=indexed, cell=refined)


#: The ``indexed_by`` name of this indexer in streams.
METHOD = "xtal-rgs-cell"


def index(
    run_file: str | Path,
    geom_file: str | Path,
    cell_file: str | Path,
    start: int,
    stop: int,
    peaks: list[dict] | None = None,
    min_peaks: int = 15,
    rings: dict | None = None,
    **settings,
) -> dict:
    """Index frames ``start``..``stop - 1`` with the cell of ``cell_file``; integrate the crystals.

    A frame is a hit with at least ``min_peaks`` peaks (indexamajig's ``--min-peaks``); hits are
    indexed, and each crystal's reflections are predicted and integrated on its frame.

    Args:
        run_file: the HDF5 run.
        geom_file: its CrystFEL geometry.
        cell_file: the CrystFEL cell to look for.
        start: first frame (0-based).
        stop: one past the last frame.
        peaks: ``find_peaks(...)["frames"]`` for the same frames; searched here when None.
        min_peaks: the hit criterion.
        rings: ``Rings`` radii in pixels (``inner``, ``middle``, ``outer``).
        **settings: ``IndexingSettings`` fields.

    Returns:
        {"frames": [{"event", "peaks", "hit", "indexed_by", "crystals": [{"cell" [a, b, c Å,
        al, be, ga °], "basis" [rows a, b, c in Å, lab frame], "profile_radius" Å⁻¹,
        "indexed_peaks", "reflections": [[h, k, l, I, sigma(I), peak, background, fs, ss],
        ...]}]}, ...]}, JSON-able.

    Raises:
        CrystallographyError: bad files, range, settings, or ``peaks`` for other frames.
    """
    geometry = read_geom(geom_file)
    cell = read_cell(cell_file)
    if cell.centering != "P":
        raise CrystallographyError(
            f"{cell_file}: centering {cell.centering}: this indexer handles primitive cells; "
            "give the primitive cell with 'centering = P'"
        )
    indexing = IndexingSettings(**settings)
    integration = Rings(**(rings or {}))
    frames, bad = read_frames(run_file, geometry, start, stop)
    if peaks is None:
        radius, search = geometry.pixel_radius(), PeakSearch()
        peaks = [
            {"event": start + n, "peaks": peak_list(geometry, peakfinder8(f, m, radius, search))}
            for n, (f, m) in enumerate(zip(frames, bad, strict=True))
        ]
    events = [entry["event"] for entry in peaks]
    if events != list(range(start, stop)):
        raise CrystallographyError(
            f"peaks are given for events {events[:3]}...; index needs one entry per frame "
            f"{start}..{stop - 1}, in order (pass find_peaks(...)['frames'] of the same range)"
        )
    # Reflections that can reach the panel, enumerated once from the target cell (with a margin
    # for refined cells); prediction keeps those near the Ewald sphere and on the panel.
    candidates = hkl_within(cell.real_basis(), 0.95 * geometry.highest_resolution())
    results = []
    for entry, frame, mask in zip(peaks, frames, bad, strict=True):
        found = np.array(entry["peaks"], dtype=float).reshape(-1, 4)
        result = {"event": entry["event"], "peaks": entry["peaks"], "hit": len(found) >= min_peaks}
        result["indexed_by"] = "none"
        result["crystals"] = []
        if result["hit"]:
            q = geometry.scattering_vectors(found[:, 0], found[:, 1])
            solution = index_peaks(q, cell, indexing)
            if solution is not None:
                result["indexed_by"] = METHOD
                result["crystals"].append(
                    _crystal(solution, frame, mask, geometry, integration, candidates)
                )
        results.append(result)
    return {"settings": asdict(indexing), "rings": asdict(integration), "frames": results}


def _crystal(solution: Solution, frame, mask, geometry, rings: Rings, candidates) -> dict:
    """A solution as JSON, with its reflections predicted and integrated on its frame."""
    radius = profile_radius(solution.basis, solution.hkl[solution.indexed], geometry.wavelength)
    hkl, fs, ss = predict(solution.basis, geometry, radius, candidates)
    intensity, sigma, peak, background, usable = integrate(
        frame, mask, fs, ss, rings, geometry.adu_per_photon
    )
    measured = np.column_stack([intensity, sigma, peak, background, fs, ss])[usable].round(2)
    reflections = [
        [*map(int, miller), *map(float, values)]
        for miller, values in zip(hkl[usable], measured, strict=True)
    ]
    return {
        "cell": [round(v, 4) for v in solution.cell.parameters],
        "basis": solution.basis.round(5).tolist(),
        "profile_radius": radius,
        "indexed_peaks": int(solution.indexed.sum()),
        "reflections": reflections,
    }
