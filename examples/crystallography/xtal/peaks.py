"""Bragg peak search in the manner of peakfinder8 (Barty et al. 2014, J. Appl. Cryst. 47, 1118).

Per ring of constant radius: a background level and noise by iterative sigma clipping; a pixel
is a candidate above max(ADC threshold, mean + SNR·σ) of its ring; connected candidates form a
peak, kept when its pixel count is in a window, its brightest pixel stands ``min_snr`` local
noise levels above the local background (pixels within ``local_bg_radius`` of the peak's box,
candidates and bad pixels left out) and its radius is in a window. Bad pixels never count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import CrystallographyError
from .geometry import Geometry, read_frames, read_geom

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class PeakSearch:
    """peakfinder8's settings, named as in CrystFEL's ``--peaks=peakfinder8`` options."""

    threshold: float = 20.0  # ADU, the absolute floor for a candidate pixel
    min_snr: float = 5.0
    min_pix_count: int = 2
    max_pix_count: int = 200
    local_bg_radius: int = 3
    min_res: float = 0.0  # pixels from the beam
    max_res: float = 1e9
    clip_iterations: int = 5

    def __post_init__(self) -> None:
        if self.min_pix_count < 1 or self.max_pix_count < self.min_pix_count:
            raise CrystallographyError(
                f"pixel-count window {self.min_pix_count}..{self.max_pix_count} is empty: "
                "need 1 <= min_pix_count <= max_pix_count"
            )
        if self.min_snr <= 0 or self.local_bg_radius < 1:
            raise CrystallographyError("min_snr must be > 0 and local_bg_radius >= 1")


def radial_statistics(
    frame: np.ndarray, bad: np.ndarray, ring: np.ndarray, snr: float, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each ring (integer radius), Bragg peaks clipped away."""
    n_rings = int(ring.max()) + 1
    use = ~bad
    mean = np.zeros(n_rings)
    sigma = np.zeros(n_rings)
    for _ in range(iterations):
        count = np.bincount(ring[use], minlength=n_rings)
        total = np.bincount(ring[use], weights=frame[use], minlength=n_rings)
        squares = np.bincount(ring[use], weights=frame[use] ** 2, minlength=n_rings)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / count, 0.0)
            sigma = np.sqrt(np.maximum(np.where(count > 0, squares / count, 0.0) - mean**2, 0.0))
        use = ~bad & (frame < (mean + snr * sigma)[ring])
    return mean, sigma


def peakfinder8(
    frame: np.ndarray, bad: np.ndarray, radius: np.ndarray, search: PeakSearch
) -> np.ndarray:
    """Peaks of one frame as rows (fs, ss, intensity, pixels), fs/ss continuous (centre = +0.5).

    ``radius`` is each pixel's distance from the beam in pixels (``Geometry.pixel_radius``).
    """
    ring = radius.astype(int)
    mean, sigma = radial_statistics(frame, bad, ring, search.min_snr, search.clip_iterations)
    in_window = (radius >= search.min_res) & (radius <= search.max_res)
    candidate = (
        ~bad & in_window & (frame > np.maximum(search.threshold, (mean + search.min_snr * sigma)[ring]))
    )  # fmt: skip
    labels, count = ndimage.label(candidate, structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros((0, 4))
    index = np.arange(1, count + 1)
    pixels = ndimage.sum_labels(candidate, labels, index)
    boxes = ndimage.find_objects(labels)
    signal = np.where(candidate, frame, 0.0)
    ss_size, fs_size = frame.shape
    r = search.local_bg_radius
    peaks = []
    for label, (box, n_pix) in enumerate(zip(boxes, pixels, strict=True), start=1):
        if not search.min_pix_count <= n_pix <= search.max_pix_count:
            continue
        ss0, ss1 = max(box[0].start - r, 0), min(box[0].stop + r, ss_size)
        fs0, fs1 = max(box[1].start - r, 0), min(box[1].stop + r, fs_size)
        window = frame[ss0:ss1, fs0:fs1]
        background = window[~candidate[ss0:ss1, fs0:fs1] & ~bad[ss0:ss1, fs0:fs1]]
        if background.size < 4:
            continue
        local_mean, local_sigma = float(background.mean()), float(background.std())
        mine = labels[ss0:ss1, fs0:fs1] == label
        values = signal[ss0:ss1, fs0:fs1][mine] - local_mean
        if values.max() < search.min_snr * max(local_sigma, 1e-6):
            continue
        weights = np.clip(values, 0.0, None)
        ss_idx, fs_idx = np.nonzero(mine)
        total = float(weights.sum())
        fs = fs0 + float((fs_idx * weights).sum()) / total + 0.5
        ss = ss0 + float((ss_idx * weights).sum()) / total + 0.5
        peaks.append((fs, ss, float(values.sum()), float(n_pix)))
    return np.array(peaks).reshape(-1, 4)


def find_peaks(
    run_file: str | Path, geom_file: str | Path, start: int, stop: int, **settings
) -> dict:
    """Search frames ``start``..``stop - 1`` of a run for Bragg peaks.

    Args:
        run_file: the HDF5 run.
        geom_file: its CrystFEL geometry (single panel).
        start: first frame (0-based).
        stop: one past the last frame.
        **settings: ``PeakSearch`` fields (``min_snr``, ``threshold``, ``min_pix_count``, ...).

    Returns:
        {"settings": {...}, "frames": [{"event": n, "peaks": [[fs, ss, 1/d in nm⁻¹,
        intensity], ...]}, ...]}, JSON-able, one entry per frame.
    """
    geometry = read_geom(geom_file)
    search = PeakSearch(**settings)
    frames, bad = read_frames(run_file, geometry, start, stop)
    radius = geometry.pixel_radius()
    found = [
        peakfinder8(frame, mask, radius, search) for frame, mask in zip(frames, bad, strict=True)
    ]
    return {
        "settings": asdict(search),
        "frames": [
            {"event": start + n, "peaks": peak_list(geometry, peaks)}
            for n, peaks in enumerate(found)
        ],
    }


def peak_list(geometry: Geometry, peaks: np.ndarray) -> list[list[float]]:
    """Rows (fs, ss, 1/d in nm⁻¹, intensity), as a CrystFEL stream lists them."""
    if len(peaks) == 0:
        return []
    inverse_d = np.linalg.norm(geometry.scattering_vectors(peaks[:, 0], peaks[:, 1]), axis=1) * 10
    return [
        [round(float(fs), 3), round(float(ss), 3), round(float(q), 5), round(float(i), 2)]
        for fs, ss, q, i in zip(peaks[:, 0], peaks[:, 1], inverse_d, peaks[:, 2], strict=True)
    ]
