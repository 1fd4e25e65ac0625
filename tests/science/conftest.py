"""Simulated runs, made once per session, that the science tests check the core against.

The runs are smaller than the benchmark's (45 frames instead of 150) so the suite stays quick
on two cores; they carry everything the quality targets are about: noise, ice and hot-pixel
false peaks, panel gaps, a beam stop and misses.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "crystallography"))

from xtal.pipeline import process_run  # noqa: E402
from xtal.simulate import MONOCLINIC, TETRAGONAL, simulate_run  # noqa: E402

FRAMES = 45


@dataclass
class Truth:
    """A simulated run's files and what the simulation put in it."""

    run_file: Path
    geom_file: Path
    cell_file: Path
    cell: object
    laue_group: str
    hit: np.ndarray
    basis: np.ndarray
    asymmetric_hkl: np.ndarray
    intensity: np.ndarray

    def true_intensity(self) -> dict[tuple[int, int, int], float]:
        return {
            tuple(h): v for h, v in zip(self.asymmetric_hkl.tolist(), self.intensity, strict=True)
        }


def _simulate(folder: Path, cell, seed: int, frames: int = FRAMES) -> Truth:
    folder.mkdir(parents=True, exist_ok=True)
    made = simulate_run(
        folder / "run.h5", folder / "run.geom", folder / "run.cell", frames, seed, cell=cell
    )
    with h5py.File(made["run_file"], "r") as handle:
        truth = handle["simulation"]
        return Truth(
            run_file=folder / "run.h5",
            geom_file=folder / "run.geom",
            cell_file=folder / "run.cell",
            cell=cell,
            laue_group=str(truth.attrs["laue_group"]),
            hit=truth["hit"][()],
            basis=truth["basis"][()],
            asymmetric_hkl=truth["asymmetric_hkl"][()],
            intensity=truth["intensity"][()],
        )


@pytest.fixture(scope="session", params=["tetragonal", "monoclinic"])
def simulated(request, tmp_path_factory) -> Truth:
    cell = {"tetragonal": TETRAGONAL, "monoclinic": MONOCLINIC}[request.param]
    return _simulate(tmp_path_factory.mktemp(request.param), cell, seed=11)


@pytest.fixture(scope="session")
def processed(simulated: Truth, tmp_path_factory) -> tuple[Truth, Path, dict]:
    """The simulated run processed end to end: its truth, OUT_DIR and the returned summary."""
    out = tmp_path_factory.mktemp("out")
    summary = process_run(simulated.run_file, simulated.geom_file, simulated.cell_file, out)
    return simulated, out, summary
