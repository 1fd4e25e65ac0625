"""Peak search and known-cell indexing against the simulation's truth, and their bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from xtal.errors import CrystallographyError
from xtal.geometry import UnitCell, read_frames, read_geom, write_cell
from xtal.index import index
from xtal.integrate import predict
from xtal.peaks import find_peaks
from xtal.symmetry import operators

MIN_PEAKS = 15


@pytest.fixture(scope="module")
def peaks(simulated):
    return find_peaks(simulated.run_file, simulated.geom_file, 0, len(simulated.hit))


def test_peaks_are_bragg_spots_and_hits_are_the_crystals(simulated, peaks):
    geometry = read_geom(simulated.geom_file)
    json.dumps(peaks)  # a function's result must be JSON
    matched = total = 0
    for frame in peaks["frames"]:
        found = np.array(frame["peaks"]).reshape(-1, 4)
        if not simulated.hit[frame["event"]]:
            assert len(found) < MIN_PEAKS, f"miss {frame['event']} looks like a hit"
            continue
        assert len(found) >= MIN_PEAKS, f"hit {frame['event']} has {len(found)} peaks"
        _, fs, ss = predict(simulated.basis[frame["event"]], geometry, 3.6e-3)
        distance = np.hypot(found[:, :1] - fs[None], found[:, 1:2] - ss[None]).min(axis=1)
        matched += int((distance < 1.5).sum())
        total += len(found)
    assert matched / total > 0.9


def test_no_peak_on_bad_or_hot_pixels(simulated, peaks):
    geometry = read_geom(simulated.geom_file)
    frames, bad = read_frames(simulated.run_file, geometry, 0, 10)
    for frame, mask, result in zip(frames, bad, peaks["frames"][:10], strict=True):
        found = np.array(result["peaks"]).reshape(-1, 4)
        pixel = found[:, :2].astype(int)
        assert not mask[pixel[:, 1], pixel[:, 0]].any()
        hot_ss, hot_fs = np.nonzero(frame == 4000.0)  # the simulation's single hot pixels
        # Those whose neighbours are all background: a hot pixel touching a Bragg spot's tail
        # is part of a real (if spoiled) peak.
        quiet = [
            np.sort(frame[max(s - 1, 0) : s + 2, max(f - 1, 0) : f + 2], axis=None)[-2] < 15
            for s, f in zip(hot_ss, hot_fs, strict=True)
        ]
        hot_ss, hot_fs = hot_ss[quiet], hot_fs[quiet]
        assert len(hot_fs) >= 8
        if len(found):
            near = np.hypot(found[:, :1] - hot_fs - 0.5, found[:, 1:2] - hot_ss - 0.5).min()
            assert near > 1.0


def test_peak_search_settings_are_checked(simulated):
    with pytest.raises(CrystallographyError, match="pixel-count window"):
        find_peaks(simulated.run_file, simulated.geom_file, 0, 1, min_pix_count=5, max_pix_count=2)
    with pytest.raises(TypeError):
        find_peaks(simulated.run_file, simulated.geom_file, 0, 1, min_snr_typo=3)


def _same_lattice(basis, truth, laue_group):
    """The solution is the true lattice up to an operator of the Laue group (no ambiguity)."""
    change = basis @ np.linalg.inv(truth)
    rounded = np.round(change)
    return np.abs(change - rounded).max() < 0.05 and any(
        np.array_equal(rounded.astype(int), op) for op in operators(laue_group)
    )


def test_index_finds_the_true_orientation_and_cell(simulated, peaks):
    frames = index(
        simulated.run_file, simulated.geom_file, simulated.cell_file, 0, len(simulated.hit),
        peaks["frames"], MIN_PEAKS,
    )["frames"]  # fmt: skip
    hits = [f for f in frames if f["hit"]]
    indexed = [f for f in hits if f["crystals"]]
    assert len(indexed) >= 0.95 * len(hits)
    for frame in indexed:
        (crystal,) = frame["crystals"]
        assert frame["indexed_by"] != "none"
        assert _same_lattice(
            np.array(crystal["basis"]), simulated.basis[frame["event"]], simulated.laue_group
        )
        assert crystal["indexed_peaks"] >= max(10, len(frame["peaks"]) / 2)
        assert len(crystal["reflections"]) > 20
    cell = np.mean([f["crystals"][0]["cell"] for f in indexed], axis=0)
    truth = np.array(simulated.cell.parameters)
    assert np.abs(cell[:3] / truth[:3] - 1).max() < 0.005
    assert np.abs(cell[3:] - truth[3:]).max() < 0.005 * 90


@pytest.mark.parametrize(
    "wrong",
    [
        UnitCell(88.0, 88.0, 42.0, 90, 90, 90, "tetragonal", "P", "c"),
        UnitCell(60.0, 70.0, 45.0, 90, 100.0, 90, "monoclinic", "P", "b"),
    ],
    ids=["tetragonal-11%-longer", "other-monoclinic"],
)
def test_a_wrong_cell_indexes_almost_nothing(simulated, peaks, tmp_path, wrong):
    write_cell(tmp_path / "wrong.cell", wrong)
    stop = 24
    frames = index(
        simulated.run_file, simulated.geom_file, tmp_path / "wrong.cell", 0, stop,
        peaks["frames"][:stop], MIN_PEAKS,
    )["frames"]  # fmt: skip
    hits = sum(f["hit"] for f in frames)
    assert hits > 10
    assert sum(bool(f["crystals"]) for f in frames) <= 0.05 * hits


def test_index_refuses_centred_cells_and_foreign_peaks(simulated, peaks, tmp_path):
    centred = UnitCell(79.1, 79.1, 37.9, 90, 90, 90, "tetragonal", "I", "c")
    write_cell(tmp_path / "i.cell", centred)
    with pytest.raises(CrystallographyError, match="centering I"):
        index(simulated.run_file, simulated.geom_file, tmp_path / "i.cell", 0, 2)
    with pytest.raises(CrystallographyError, match="one entry per frame 2..3"):
        index(
            simulated.run_file, simulated.geom_file, simulated.cell_file, 2, 4, peaks["frames"][:2]
        )


def test_index_searches_peaks_itself_when_not_given(simulated, peaks):
    own = index(simulated.run_file, simulated.geom_file, simulated.cell_file, 0, 3)
    given = index(
        simulated.run_file, simulated.geom_file, simulated.cell_file, 0, 3, peaks["frames"][:3]
    )
    assert own == given
