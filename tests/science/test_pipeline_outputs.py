"""A whole simulated run through the core: OUT_DIR's stream, .hkl and summary.json read back
and checked against the simulation's truth, with the quality targets of issue 11."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
from xtal.errors import CrystallographyError
from xtal.index import index
from xtal.merge import merge
from xtal.pipeline import chunks, process_chunk, process_run
from xtal.simulate import TETRAGONAL, detector, simulate_run
from xtal.stream import read_hkl, read_stream, write_stream


def test_summary_meets_the_quality_targets(processed):
    truth, out, summary = processed
    written = json.loads((out / "summary.json").read_text())
    for key in ("frames", "hits", "indexed", "cell", "cc_half", "frames_per_second",
                "in_process_frames_per_second"):  # fmt: skip
        assert key in written
    assert written["frames"] == len(truth.hit)
    assert abs(written["hits"] - int(truth.hit.sum())) <= 1
    assert written["indexed"] >= 0.95 * written["hits"]
    cell = np.array(written["cell"])
    reference = np.array(truth.cell.parameters)
    assert np.abs(cell[:3] / reference[:3] - 1).max() < 0.005
    assert np.abs(cell[3:] - reference[3:]).max() < 0.45  # 0.5 % of 90°
    assert written["cc_half"] >= 0.5
    assert written["in_process_frames_per_second"] > 0
    assert written["frames_per_second"] is None  # measured by the fan-out, not here


def test_stream_reads_back_as_what_was_found(processed):
    truth, out, summary = processed
    stream = read_stream(out / "run.stream")
    assert stream["cell"].parameters == pytest.approx(truth.cell.parameters, abs=1e-3)
    assert "clen = " in stream["geometry"]
    chunks_ = stream["chunks"]
    assert [c["event"] for c in chunks_] == list(range(len(truth.hit)))
    assert [c["serial"] for c in chunks_] == [e + 1 for e in range(len(truth.hit))]
    assert {c["filename"] for c in chunks_} == {str(truth.run_file)}
    assert sum(c["hit"] for c in chunks_) == summary["hits"]
    assert sum(bool(c["crystals"]) for c in chunks_) == summary["indexed"]
    for chunk in chunks_:
        assert chunk["indexed_by"] == ("none" if not chunk["crystals"] else "xtal-rgs-cell")
        for crystal in chunk["crystals"]:
            basis = np.array(crystal["basis"])  # from astar/bstar/cstar in nm⁻¹
            # The cell line (nm, deg) and the reciprocal vectors describe the same crystal.
            lengths = np.linalg.norm(basis, axis=1)
            assert lengths == pytest.approx(crystal["cell"][:3], rel=1e-4)
            # ... and it is the simulated crystal, up to the Laue group.
            change = basis @ np.linalg.inv(truth.basis[chunk["event"]])
            assert np.abs(change - np.round(change)).max() < 0.05
            reflections = np.array(crystal["reflections"])
            assert reflections.shape[1] == 9 and len(reflections) > 20


def test_merged_hkl_matches_the_true_intensities(processed):
    truth, out, summary = processed
    merged = read_hkl(out / "merged.hkl")
    assert merged["symmetry"] == truth.laue_group
    assert len(merged["reflections"]) == summary["unique_reflections"]
    true_intensity = truth.true_intensity()
    pairs = np.array(
        [(r[3], true_intensity[tuple(r[:3])]) for r in merged["reflections"] if r[5] >= 2]
    )
    assert len(pairs) > 300
    assert np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1] > 0.8
    # The .hkl's last line closes the list, as CrystFEL's readers expect.
    assert (out / "merged.hkl").read_text().rstrip().splitlines()[-1] == "End of reflections"


def test_merge_by_reference_matches_and_is_reproducible(processed):
    truth, out, summary = processed
    first, again = merge(out / "run.stream"), merge(out / "run.stream")
    assert first["cc_half"] == pytest.approx(summary["cc_half"])
    assert first == again
    assert merge(out / "run.stream", seed=5)["cc_half"] != pytest.approx(first["cc_half"], abs=1e-9)


def test_streams_of_chunks_concatenate(simulated, tmp_path):
    parts = []
    for start, stop in chunks(8, 5):
        result = index(simulated.run_file, simulated.geom_file, simulated.cell_file, start, stop)
        part = tmp_path / f"part-{start}.stream"
        write_stream(
            part, simulated.run_file, simulated.geom_file, simulated.cell_file, result["frames"]
        )
        parts.append(part.read_text())
    (tmp_path / "all.stream").write_text("".join(parts))
    stream = read_stream(tmp_path / "all.stream")
    assert [c["event"] for c in stream["chunks"]] == list(range(8))


def test_a_run_without_crystals(tmp_path):
    simulate_run(tmp_path / "r.h5", tmp_path / "r.geom", tmp_path / "r.cell", 4, 1,
                 cell=TETRAGONAL, hit_fraction=0.0)  # fmt: skip
    summary = process_run(
        tmp_path / "r.h5", tmp_path / "r.geom", tmp_path / "r.cell", tmp_path / "out"
    )
    assert (summary["frames"], summary["hits"], summary["indexed"]) == (4, 0, 0)
    assert summary["cell"] is None and summary["cc_half"] is None
    assert read_hkl(tmp_path / "out" / "merged.hkl")["reflections"] == []


def test_truncated_or_foreign_streams(processed, tmp_path):
    truth, out, summary = processed
    lines = (out / "run.stream").read_text().splitlines(keepends=True)
    (tmp_path / "cut.stream").write_text("".join(lines[: len(lines) // 2]))
    with pytest.raises(CrystallographyError, match="ends inside a block"):
        read_stream(tmp_path / "cut.stream")
    broken = next(i for i, line in enumerate(lines) if line.startswith("astar = "))
    lines[broken] = "astar = +0.01 nm^-1\n"
    (tmp_path / "broken.stream").write_text("".join(lines))
    with pytest.raises(CrystallographyError, match=f"line {broken + 1}: cannot read 'astar"):
        read_stream(tmp_path / "broken.stream")
    with pytest.raises(CrystallographyError, match="not a CrystFEL stream"):
        read_stream(truth.cell_file)
    with pytest.raises(CrystallographyError, match="not a CrystFEL reflection list"):
        read_hkl(truth.cell_file)


def test_every_step_takes_json_arguments_and_returns_json(tmp_path):
    """What a %%faas function receives and returns: names, paths, numbers; never frames."""
    arguments = {"path": str(tmp_path / "r.h5"), "geom_file": str(tmp_path / "r.geom"),
                 "cell_file": str(tmp_path / "r.cell"), "n_frames": 6, "seed": 3,
                 "cell": "monoclinic"}  # fmt: skip
    made = json.loads(json.dumps(simulate_run(**json.loads(json.dumps(arguments)))))
    assert made["laue_group"] == "2/m_uab" and made["frames"] == 6
    chunk = {"run_file": made["run_file"], "geom_file": made["geom_file"],
             "cell_file": made["cell_file"], "start": 2, "stop": 6}  # fmt: skip
    indexed = json.loads(json.dumps(index(**chunk)))
    assert [frame["event"] for frame in indexed["frames"]] == [2, 3, 4, 5]
    # A .cell file names the cell to simulate, too (here the one just written).
    again = simulate_run(tmp_path / "s.h5", tmp_path / "s.geom", tmp_path / "s.cell", 1, 0,
                         cell=made["cell_file"], geometry=made["geom_file"])  # fmt: skip
    assert again["laue_group"] == "2/m_uab"
    assert (tmp_path / "s.geom").read_text() == (tmp_path / "r.geom").read_text()
    with pytest.raises(CrystallographyError, match="neither one of tetragonal, monoclinic"):
        simulate_run(
            tmp_path / "x.h5", tmp_path / "x.geom", tmp_path / "x.cell", 1, 0, cell="cubic"
        )


def test_a_rotated_rectangular_panel(tmp_path):
    """fs along +y and ss along −x, not square: the geometry is used the same way throughout."""
    geometry = dataclasses.replace(
        detector((400, 440)), fs_vector=(0.0, 1.0), ss_vector=(-1.0, 0.0), corner_x=197.0,
        corner_y=-223.0,
    )  # fmt: skip
    files = [tmp_path / "r.h5", tmp_path / "r.geom", tmp_path / "r.cell"]
    made = simulate_run(*files, 12, 4, cell="monoclinic", geometry=geometry)
    frames = index(*files, 0, 12)["frames"]
    with h5py.File(files[0], "r") as handle:
        truth = handle["simulation/basis"][()]
    indexed = [frame for frame in frames if frame["crystals"]]
    assert made["hits"] >= 6 and len(indexed) >= 0.95 * sum(f["hit"] for f in frames)
    for frame in indexed:
        change = np.array(frame["crystals"][0]["basis"]) @ np.linalg.inv(truth[frame["event"]])
        assert np.abs(change - np.round(change)).max() < 0.05


def test_chunks_can_write_their_streams_and_return_little(simulated, tmp_path):
    files = [str(simulated.run_file), str(simulated.geom_file), str(simulated.cell_file)]
    full = process_chunk(*files, 0, 6)
    compact = [
        process_chunk(*files, start, stop, stream_file=str(tmp_path / f"{start}.stream"))
        for start, stop in chunks(6, 3)
    ]
    lines = [frame for result in compact for frame in result["frames"]]
    assert len(json.dumps(lines)) < len(json.dumps(full["frames"])) / 20
    assert [f["event"] for f in lines] == list(range(6))
    assert [f["hit"] for f in lines] == [f["hit"] for f in full["frames"]]
    assert [f["num_peaks"] for f in lines] == [len(f["peaks"]) for f in full["frames"]]
    assert [f["cells"] for f in lines] == [
        [c["cell"] for c in f["crystals"]] for f in full["frames"]
    ]
    # The chunk streams, concatenated, are the stream of the whole range.
    (tmp_path / "run.stream").write_text(
        "".join((tmp_path / f"{s}.stream").read_text() for s in (0, 3))
    )
    write_stream(tmp_path / "one.stream", *files, full["frames"])
    assert (
        read_stream(tmp_path / "run.stream")["chunks"]
        == read_stream(tmp_path / "one.stream")["chunks"]
    )
    assert merge(tmp_path / "run.stream") == merge(tmp_path / "one.stream")
