"""Simulated serial-crystallography runs, with their ground truth, so every step can be checked.

Each hit frame holds one randomly oriented crystal: the reflections of a real lattice near the
Ewald sphere, with intensities fixed per unique reflection under the Laue group (Wilson-like:
exponentially distributed, falling off with resolution), a Gaussian partiality in the excitation
error and a per-crystal scale. On top: a water-ring background, Poisson and read noise, hot
pixels, ice rings with ice spots (false peaks), panel gaps and a beam stop flagged negative
(``flag_lessthan = 0``). Misses have everything but the crystal.

The truth is stored beside the frames in the run file, under ``/simulation``: per frame the hit
flag and the real-space basis (rows a, b, c in Å, lab frame), and the true intensity of every
unique reflection. Tools that read ``/entry_1/data_1/data`` ignore it.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from .errors import CellError
from .geometry import (
    HC_EV_ANGSTROM,
    Geometry,
    UnitCell,
    hkl_within,
    read_cell,
    read_geom,
    write_cell,
    write_geom,
)
from .symmetry import asymmetric_indices, default_laue_group

#: Lysozyme-like primitive tetragonal cell (intensities in 4/mmm).
TETRAGONAL = UnitCell(79.1, 79.1, 37.9, 90.0, 90.0, 90.0, "tetragonal", "P", "c")
#: A primitive monoclinic cell, unique axis b (intensities in 2/m).
MONOCLINIC = UnitCell(48.2, 62.5, 55.3, 90.0, 107.4, 90.0, "monoclinic", "P", "b")

#: The cells ``simulate_run`` knows by name.
CELLS = {"tetragonal": TETRAGONAL, "monoclinic": MONOCLINIC}

#: d-spacing of hexagonal ice's strongest ring (Å), where the false ice spots sit.
ICE_RING_D = 3.67
#: d-spacing of the liquid-water ring (Å) in the background.
WATER_RING_D = 3.2
MASKED_VALUE = -10.0


def detector(
    shape: tuple[int, int] = (512, 512),
    pixel_size: float = 100e-6,
    clen: float = 0.07,
    photon_energy: float = 9500.0,
) -> Geometry:
    """A single panel with the beam a few pixels off its centre.

    Args:
        shape: (ss, fs) pixels.
        pixel_size: metres.
        clen: sample to detector, metres.
        photon_energy: eV.
    """
    ss, fs = shape
    return Geometry(
        wavelength=HC_EV_ANGSTROM / photon_energy,
        clen=clen,
        res=1.0 / pixel_size,
        corner_x=-fs / 2 + 3.3 * fs / 512,
        corner_y=-ss / 2 - 5.6 * ss / 512,
        min_fs=0,
        max_fs=fs - 1,
        min_ss=0,
        max_ss=ss - 1,
    )


def bad_region(geometry: Geometry) -> np.ndarray:
    """Panel gaps (a vertical and a horizontal strip) and a beam stop with its arm."""
    ss_size, fs_size = geometry.shape
    bad = np.zeros(geometry.shape, dtype=bool)
    gap = max(2, round(6 * fs_size / 512))
    fs0, ss0 = int(0.62 * fs_size), int(0.30 * ss_size)
    bad[:, fs0 : fs0 + gap] = True
    bad[ss0 : ss0 + gap, :] = True
    ss, fs = np.indices(geometry.shape, dtype=float)
    x, y = geometry.lab_xy(fs + 0.5, ss + 0.5)
    radius = 12 * fs_size / 512
    bad |= np.hypot(x, y) < radius
    bad |= (np.abs(y) < radius / 3) & (x < 0)  # the arm holding the stop
    return bad


def simulate_run(
    path: str | Path,
    geom_file: str | Path,
    cell_file: str | Path,
    n_frames: int = 150,
    seed: int = 0,
    cell: UnitCell | str = "tetragonal",
    geometry: Geometry | str | None = None,
    hit_fraction: float = 0.8,
    crystal_scale: float = 900.0,
    wilson_b: float = 20.0,
    profile_radius: float = 1.2e-3,
    spot_sigma: float = 0.8,
    background: float = 3.0,
    read_noise: float = 1.0,
    ice_fraction: float = 0.3,
) -> dict:
    """Write a run (HDF5), its ``.geom`` and ``.cell``; return what was made, as JSON.

    Args:
        path: the HDF5 run to write; frames at ``/entry_1/data_1/data``, (N, ss, fs) float32.
        geom_file: the CrystFEL geometry to write.
        cell_file: the CrystFEL unit cell to write (the truth: the cell the crystals have).
        n_frames: frames in the run.
        seed: the random seed; the same seed gives the same run.
        cell: the crystals' cell: a ``UnitCell``, a name in ``CELLS`` ("tetragonal",
            "monoclinic") or the path of a CrystFEL ``.cell`` file (primitive).
        geometry: the detector: a ``Geometry``, the path of a single-panel ``.geom``, or
            ``detector()`` when None.
        hit_fraction: the probability that a frame holds a crystal.
        crystal_scale: photons of a mean reflection at zero resolution, fully excited.
        wilson_b: Å², the intensity fall-off exp(−B/(2d²)).
        profile_radius: Å⁻¹, the width of the Gaussian partiality in the excitation error.
        spot_sigma: pixels, the width of a spot.
        background: photons per pixel away from the water ring.
        read_noise: ADU, Gaussian, added after the Poisson noise.
        ice_fraction: the probability that a frame has an ice ring with ice spots.

    Returns:
        {"run_file", "geom_file", "cell_file", "frames", "hits", "laue_group",
        "spots_per_hit"}: paths as given, counts, and the mean number of reflections drawn.
    """
    if isinstance(cell, str | Path):
        cell = _named_cell(cell)
    if isinstance(geometry, str | Path):
        geometry = read_geom(geometry)
    geometry = geometry or detector()
    rng = np.random.default_rng(seed)
    laue_group = default_laue_group(cell.lattice_type, cell.unique_axis)
    wavelength = geometry.wavelength
    d_min = geometry.highest_resolution()
    ss_size, fs_size = geometry.shape

    # True intensities, one per unique reflection, looked up through a dense hkl table.
    basis = cell.real_basis()
    hkl = hkl_within(basis, d_min)
    unique, inverse = np.unique(asymmetric_indices(hkl, laue_group), axis=0, return_inverse=True)
    d = 1.0 / np.linalg.norm(unique @ np.linalg.inv(basis).T, axis=1)
    true_intensity = rng.exponential(1.0, len(unique)) * np.exp(-wilson_b / (2 * d**2))
    limits = np.abs(hkl).max(axis=0)
    table = np.zeros(2 * limits + 1)
    table[tuple((hkl + limits).T)] = true_intensity[inverse.ravel()]

    bad = bad_region(geometry)
    q_pixels = np.linalg.norm(
        geometry.scattering_vectors(*(c + 0.5 for c in np.indices(geometry.shape)[::-1])), axis=-1
    )
    water = background * (1.0 + 1.5 * np.exp(-(((q_pixels - 1 / WATER_RING_D) / 0.05) ** 2)))
    hot = rng.choice(ss_size * fs_size, size=12, replace=False)
    hot_pairs = rng.choice(ss_size * fs_size - fs_size - 1, size=2, replace=False)

    hits = rng.random(n_frames) < hit_fraction
    bases = np.zeros((n_frames, 3, 3))
    scales = np.zeros(n_frames)
    drawn = []
    with h5py.File(path, "w") as handle:
        frames = handle.create_dataset(
            geometry.data, shape=(n_frames, ss_size, fs_size), dtype=np.float32,
            chunks=(1, ss_size, fs_size),
        )  # fmt: skip
        for n in range(n_frames):
            expected = water.copy()
            if rng.random() < ice_fraction:
                ice_spots = _ice(rng, geometry, expected, q_pixels, spot_sigma)
                render_spots(expected, *ice_spots, spot_sigma)
            if hits[n]:
                rotation = Rotation.random(random_state=rng).as_matrix()
                bases[n] = basis @ rotation.T
                scales[n] = crystal_scale * rng.lognormal(0.0, 0.3)
                radius = profile_radius * rng.uniform(0.8, 1.2)
                fs, ss, photons = _bragg(bases[n], hkl, limits, table, geometry, radius)
                photons *= scales[n]
                drawn.append(len(photons))
                render_spots(expected, fs, ss, photons, spot_sigma)
            counts = rng.poisson(expected).astype(np.float32) * geometry.adu_per_photon
            counts += rng.normal(0.0, read_noise, counts.shape).astype(np.float32)
            np.maximum(counts, 0.0, out=counts)  # an ADC floor: only flagged pixels are negative
            flat = counts.reshape(-1)
            flat[hot] = 4000.0
            flat[hot_pairs] = 3000.0
            flat[hot_pairs + 1] = 3000.0
            counts[bad] = MASKED_VALUE
            frames[n] = counts
        truth = handle.create_group("simulation")
        truth.attrs.update(
            cell=cell.parameters, lattice_type=cell.lattice_type, laue_group=laue_group,
            wavelength=wavelength, seed=seed,
        )  # fmt: skip
        truth["hit"] = hits
        truth["basis"] = bases
        truth["scale"] = scales
        truth["asymmetric_hkl"] = unique
        truth["intensity"] = true_intensity
    write_geom(geom_file, geometry)
    write_cell(cell_file, cell)
    return {
        "run_file": str(path),
        "geom_file": str(geom_file),
        "cell_file": str(cell_file),
        "frames": n_frames,
        "hits": int(hits.sum()),
        "laue_group": laue_group,
        "spots_per_hit": float(np.mean(drawn)) if drawn else 0.0,
    }


def _named_cell(name: str | Path) -> UnitCell:
    if str(name) in CELLS:
        return CELLS[str(name)]
    if not Path(name).is_file():
        raise CellError(
            f"cell '{name}' is neither one of {', '.join(CELLS)} nor a CrystFEL .cell file"
        )
    return read_cell(name)


def _bragg(
    basis: np.ndarray,
    hkl: np.ndarray,
    limits: np.ndarray,
    table: np.ndarray,
    geometry: Geometry,
    profile_radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions and relative photons of the reflections near the Ewald sphere on the panel."""
    inverse_wavelength = 1.0 / geometry.wavelength
    q = hkl @ np.linalg.inv(basis).T
    s1 = q.copy()
    s1[:, 2] += inverse_wavelength
    excitation = np.linalg.norm(s1, axis=1) - inverse_wavelength
    near = (np.abs(excitation) < 3 * profile_radius) & (s1[:, 2] > 0)
    fs, ss = geometry.project(s1[near])
    ss_size, fs_size = geometry.shape
    on = (fs >= 0) & (fs < fs_size) & (ss >= 0) & (ss < ss_size)
    partiality = np.exp(-((excitation[near][on] / profile_radius) ** 2))
    intensity = table[tuple((hkl[near][on] + limits).T)]
    return fs[on], ss[on], intensity * partiality


def _ice(rng, geometry, expected, q_pixels, spot_sigma):
    """Add an ice ring to the background; return a few strong ice spots on it."""
    expected += 2.0 * np.exp(-(((q_pixels - 1 / ICE_RING_D) / 0.003) ** 2))
    count = rng.integers(2, 7)
    q = 1 / ICE_RING_D
    two_theta = 2 * math.asin(q * geometry.wavelength / 2)
    radius = math.tan(two_theta) * geometry.clen * geometry.res
    phi = rng.uniform(0, 2 * math.pi, count)
    fs, ss = geometry.panel_coordinates(radius * np.cos(phi), radius * np.sin(phi))
    return fs, ss, rng.uniform(300.0, 1500.0, count)


def render_spots(
    image: np.ndarray, fs: np.ndarray, ss: np.ndarray, photons: np.ndarray, sigma: float
) -> None:
    """Add Gaussian spots of the given total photons at continuous (fs, ss), in place."""
    if len(photons) == 0:
        return
    half = max(2, math.ceil(3 * sigma))
    offsets = np.arange(-half, half + 1)
    ss_size, fs_size = image.shape
    pixel_fs = np.floor(fs).astype(int)[:, None, None] + offsets[None, None, :]
    pixel_ss = np.floor(ss).astype(int)[:, None, None] + offsets[None, :, None]
    weight = np.exp(
        -((pixel_fs + 0.5 - fs[:, None, None]) ** 2 + (pixel_ss + 0.5 - ss[:, None, None]) ** 2)
        / (2 * sigma**2)
    )
    weight /= weight.sum(axis=(1, 2), keepdims=True)
    inside = (pixel_fs >= 0) & (pixel_fs < fs_size) & (pixel_ss >= 0) & (pixel_ss < ss_size)
    index = (pixel_ss * fs_size + pixel_fs)[inside]
    values = (weight * photons[:, None, None])[inside]
    image += np.bincount(index, weights=values, minlength=image.size).reshape(image.shape)
