"""Prediction and ring integration of the reflections of an indexed crystal on a still frame.

As CrystFEL's ``--int-radius`` rings: the intensity is the sum over a disc around the
predicted position minus the mean of an annulus (one 3σ clip, so a neighbouring spot does not
lift the background), with its counting error; a reflection whose intensity sits in one bright
pixel is a hot pixel or a zinger and is left out. The profile radius (how far from the Ewald
sphere a reflection still shines) is estimated per crystal from the indexed peaks, as CrystFEL
does before it predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Geometry, hkl_within


@dataclass(frozen=True)
class Rings:
    """Radii in pixels: peak disc, then the background annulus between ``middle`` and ``outer``."""

    inner: float = 2.5
    middle: float = 3.5
    outer: float = 5.5
    #: Largest share of a reflection's intensity one bright pixel may carry: Bragg spots span
    #: several pixels, hot pixels and zingers one or two.
    max_pixel_fraction: float = 0.4


def excitation_errors(basis: np.ndarray, hkl: np.ndarray, wavelength: float) -> np.ndarray:
    """Distance (Å⁻¹) of each reflection's reciprocal lattice point from the Ewald sphere."""
    s1 = hkl @ np.linalg.inv(basis).T
    s1[:, 2] += 1.0 / wavelength
    return np.linalg.norm(s1, axis=1) - 1.0 / wavelength


def profile_radius(
    basis: np.ndarray, hkl: np.ndarray, wavelength: float, percentile: float = 90.0
) -> float:
    """A crystal's profile radius (Å⁻¹): a high percentile of its indexed peaks' excitation errors."""
    return float(
        max(np.percentile(np.abs(excitation_errors(basis, hkl, wavelength)), percentile), 1e-4)
    )


def predict(
    basis: np.ndarray, geometry: Geometry, radius: float, hkl: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miller indices and panel coordinates of reflections within ``radius`` of the Ewald sphere.

    ``hkl`` are the reflections to consider; all those the panel's resolution allows when None.
    """
    if hkl is None:
        hkl = hkl_within(basis, geometry.highest_resolution())
    excitation = excitation_errors(basis, hkl, geometry.wavelength)
    near = np.abs(excitation) < radius
    hkl = hkl[near]
    s1 = hkl @ np.linalg.inv(basis).T
    s1[:, 2] += 1.0 / geometry.wavelength
    forward = s1[:, 2] > 0
    hkl, s1 = hkl[forward], s1[forward]
    fs, ss = geometry.project(s1)
    ss_size, fs_size = geometry.shape
    on = (fs >= 0) & (fs < fs_size) & (ss >= 0) & (ss < ss_size)
    return hkl[on], fs[on], ss[on]


def integrate(
    frame: np.ndarray,
    bad: np.ndarray,
    fs: np.ndarray,
    ss: np.ndarray,
    rings: Rings,
    adu_per_photon: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integrate spots at continuous (fs, ss).

    Returns:
        (intensity, sigma, peak, background, usable): per spot, in ADU; ``usable`` is False
        where the disc touches a bad pixel or the panel edge, the annulus has too few pixels,
        or one bright pixel carries more than ``max_pixel_fraction`` of the intensity.
    """
    half = int(np.ceil(rings.outer))
    offsets = np.arange(-half, half + 1)
    ss_size, fs_size = frame.shape
    pixel_fs = np.floor(fs).astype(int)[:, None, None] + offsets[None, None, :]
    pixel_ss = np.floor(ss).astype(int)[:, None, None] + offsets[None, :, None]
    distance = np.hypot(pixel_fs + 0.5 - fs[:, None, None], pixel_ss + 0.5 - ss[:, None, None])
    inside = (pixel_fs >= 0) & (pixel_fs < fs_size) & (pixel_ss >= 0) & (pixel_ss < ss_size)
    flat = np.clip(pixel_ss, 0, ss_size - 1) * fs_size + np.clip(pixel_fs, 0, fs_size - 1)
    values = frame.reshape(-1)[flat]
    good = inside & ~bad.reshape(-1)[flat]
    disc = distance < rings.inner
    annulus = (distance >= rings.middle) & (distance < rings.outer) & good

    def annulus_stats(use: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count = use.sum(axis=(1, 2))
        total = np.where(use, values, 0.0).sum(axis=(1, 2))
        mean = total / np.maximum(count, 1)
        variance = np.where(use, (values - mean[:, None, None]) ** 2, 0.0).sum(axis=(1, 2))
        return mean, variance / np.maximum(count - 1, 1), count

    mean, variance, count = annulus_stats(annulus)
    clipped = annulus & (values < (mean + 3 * np.sqrt(variance))[:, None, None])
    background, variance, count = annulus_stats(clipped)
    n_disc = disc.sum(axis=(1, 2))
    disc_values = np.where(disc, values, 0.0)
    intensity = disc_values.sum(axis=(1, 2)) - n_disc * background
    sigma = np.sqrt(
        np.maximum(intensity, 0.0) * adu_per_photon
        + n_disc * variance
        + n_disc**2 * variance / np.maximum(count, 1)
    )
    peak = np.where(disc, values, -np.inf).max(axis=(1, 2))
    bright = peak - background > 5 * np.sqrt(variance)
    single_pixel = bright & (peak - background > rings.max_pixel_fraction * intensity)
    usable = np.all(~disc | good, axis=(1, 2)) & (count >= 8) & ~single_pixel
    return intensity, sigma, peak, background, usable
