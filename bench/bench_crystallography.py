"""Benchmark: the serial-crystallography science core on its own simulated runs (issue 11).

For a tetragonal and a monoclinic cell, simulates a run (default 150 frames of 512 × 512 pixels
with noise, ice and hot-pixel false peaks, panel gaps, a beam stop and misses), processes it in
this process chunk by chunk (peak search, then indexing with integration), writes the stream,
merges it, and checks the results against the simulation's truth: hits indexed, orientations
right up to the Laue group, the mean refined cell against the true one, CC½ and the correlation
of the merged intensities with the true ones. A wrong cell (each lattice's cell with 11 % longer
axes, and the other lattice's cell) is the negative control. The same again as a stress case:
crystals a sixth as strong and ice in twice as many frames. Frames per second are given per
step, on one core.

Bounded in time: chunks stop once ``--max-seconds`` per lattice are spent, and the tables say
how many frames were processed.

Run: .venv/bin/python bench/bench_crystallography.py [--frames 150] [--max-seconds 240]
(rewrites the generated part of docs/crystallography.md; ``--no-write`` only prints it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "crystallography"))

from xtal.geometry import UnitCell, write_cell  # noqa: E402
from xtal.index import index  # noqa: E402
from xtal.merge import merge  # noqa: E402
from xtal.pipeline import chunks, process_chunk  # noqa: E402
from xtal.simulate import MONOCLINIC, TETRAGONAL, simulate_run  # noqa: E402
from xtal.stream import read_hkl, write_hkl, write_stream, write_summary  # noqa: E402
from xtal.symmetry import operators  # noqa: E402

DOC = REPO / "docs" / "crystallography.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
CHUNK = 25
#: Frames the wrong cells are tried on (the negative control).
NEGATIVE_FRAMES = 60


def longer(cell: UnitCell, factor: float) -> UnitCell:
    return dataclasses.replace(cell, a=cell.a * factor, b=cell.b * factor, c=cell.c * factor)


def measure(
    name: str, cell: UnitCell, wrong: list[tuple[str, UnitCell]], args, folder: Path, **simulation
) -> dict:
    run, geom, cell_file = folder / "run.h5", folder / "run.geom", folder / "run.cell"
    began = time.perf_counter()
    made = simulate_run(run, geom, cell_file, args.frames, args.seed, cell=cell, **simulation)
    simulate_seconds = time.perf_counter() - began
    with h5py.File(run, "r") as handle:
        truth_hit = handle["simulation/hit"][()]
        truth_basis = handle["simulation/basis"][()]
        true = dict(zip(map(tuple, handle["simulation/asymmetric_hkl"][()].tolist()),
                        handle["simulation/intensity"][()], strict=True))  # fmt: skip

    results, spent = [], 0.0
    for start, stop in chunks(args.frames, CHUNK):
        if spent > args.max_seconds:
            break
        began = time.perf_counter()
        results.append(process_chunk(str(run), str(geom), str(cell_file), start, stop))
        spent += time.perf_counter() - began
    frames = [frame for result in results for frame in result["frames"]]
    processed = len(frames)
    stream = folder / "run.stream"
    write_stream(stream, run, geom, cell_file, frames)
    began = time.perf_counter()
    merged = merge(stream)
    merge_seconds = time.perf_counter() - began
    write_hkl(folder / "merged.hkl", merged)
    summary = write_summary(folder / "summary.json", frames, merged, None, processed / spent)

    ops = operators(merged["laue_group"])
    right = 0
    for frame in frames:
        for crystal in frame["crystals"]:
            change = np.array(crystal["basis"]) @ np.linalg.inv(truth_basis[frame["event"]])
            rounded = np.round(change).astype(int)
            right += np.abs(change - rounded).max() < 0.05 and any(
                np.array_equal(rounded, op) for op in ops
            )
    pairs = np.array([(r[3], true[tuple(r[:3])]) for r in read_hkl(folder / "merged.hkl")["reflections"] if r[5] >= 2])  # fmt: skip
    cell_error = np.array(summary["cell"]) - np.array(cell.parameters)

    negatives = []
    peaks = [{"event": f["event"], "peaks": f["peaks"]} for f in frames]
    for label, wrong_cell in wrong:
        write_cell(folder / "wrong.cell", wrong_cell)
        stop = min(processed, NEGATIVE_FRAMES)
        tried = index(str(run), str(geom), str(folder / "wrong.cell"), 0, stop, peaks[:stop])
        hits = sum(f["hit"] for f in tried["frames"])
        negatives.append((label, hits, sum(bool(f["crystals"]) for f in tried["frames"])))

    seconds = {s: sum(r["seconds"][s] for r in results) for s in ("find_peaks", "index")}
    return {
        "name": name,
        "cell": cell,
        "made": made,
        "processed": processed,
        "true_hits": int(truth_hit[:processed].sum()),
        "summary": summary,
        "right": right,
        "cell_error_percent": (np.abs(cell_error[:3]) / np.array(cell.parameters[:3]) * 100).max(),
        "angle_error": np.abs(cell_error[3:]).max(),
        "cc_truth": float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]),
        "shells": merged["shells"],
        "negatives": negatives,
        "fps": {
            "simulate_run": args.frames / simulate_seconds,
            "find_peaks": processed / seconds["find_peaks"],
            "index (with integration)": processed / seconds["index"],
            "find_peaks + index": processed / spent,
        },
        "merge_seconds": merge_seconds,
        "peaks_per_hit": np.mean([len(f["peaks"]) for f in frames if f["hit"]]),
    }


def report(rows: list[dict], args) -> str:
    lines = [
        f"Measured by `bench/bench_crystallography.py` on {time.strftime('%Y-%m-%d')} "
        f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}); runs of {args.frames} frames of "
        f"512 × 512 pixels, seed {args.seed}, processed in one process in chunks of {CHUNK}. "
        'The "weak" runs are a stress case: crystals a sixth as strong (`crystal_scale` 150 '
        "instead of 900) and an ice ring with ice spots in 60 % of the frames instead of 30 %.",
        "",
        "| | " + " | ".join(r["name"] for r in rows) + " | target |",
        "|---|" + "---|" * len(rows) + "---|",
    ]

    def row(label, values, target=""):
        lines.append(f"| {label} | " + " | ".join(values) + f" | {target} |")

    row("true cell (Å, °)", [" ".join(f"{v:g}" for v in r["cell"].parameters) for r in rows])
    row("frames processed", [f"{r['processed']} of {args.frames}" for r in rows])
    row(
        "hits (≥ 15 peaks) / true hits",
        [f"{r['summary']['hits']} / {r['true_hits']}" for r in rows],
    )
    row("peaks per hit (mean)", [f"{r['peaks_per_hit']:.0f}" for r in rows])
    row(
        "hits indexed",
        [f"{r['summary']['indexed']} ({100 * r['summary']['indexing_rate']:.1f} %)" for r in rows],
        "≥ 95 %",
    )
    row("indexed as the true lattice (basis within 0.05 of a Laue-group operator)",
        [f"{r['right']} of {r['summary']['indexed']}" for r in rows])  # fmt: skip
    row(
        "mean refined cell (Å, °)",
        [" ".join(f"{v:.3f}" for v in r["summary"]["cell"]) for r in rows],
    )
    row("largest length error", [f"{r['cell_error_percent']:.3f} %" for r in rows], "≤ 0.5 %")
    row("largest angle error", [f"{r['angle_error']:.3f}°" for r in rows], "≤ 0.45° (0.5 % of 90°)")
    row("unique reflections merged", [str(r["summary"]["unique_reflections"]) for r in rows])
    row("CC½", [f"{r['summary']['cc_half']:.3f}" for r in rows], "≥ 0.5")
    row("CC of merged I with the true I (nmeas ≥ 2)", [f"{r['cc_truth']:.3f}" for r in rows])
    for i in range(len(rows[0]["negatives"])):
        label = " / ".join(dict.fromkeys(r["negatives"][i][0] for r in rows))
        row(f"wrong cell ({label}), first {NEGATIVE_FRAMES} frames: hits indexed",
            [f"{r['negatives'][i][2]} of {r['negatives'][i][1]}" for r in rows], "(almost) none")  # fmt: skip
    for step in rows[0]["fps"]:
        row(f"frames/s: {step}", [f"{r['fps'][step]:.1f}" for r in rows])
    row("merge of the stream (s)", [f"{r['merge_seconds']:.2f}" for r in rows])
    lines += ["", "CC½ by resolution shell (equal numbers of unique reflections):", ""]
    for r in rows:
        lines.append(
            f"- {r['name']}: "
            + ", ".join(
                f"{s['d_max']:.1f}–{s['d_min']:.2f} Å {s['cc_half']:.2f}" for s in r["shells"]
            )
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-seconds", type=float, default=240.0, help="per lattice")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    wrong = {
        "tetragonal": [
            ("11 % longer", longer(TETRAGONAL, 1.11)),
            ("the other lattice's", MONOCLINIC),
        ],
        "monoclinic": [
            ("11 % longer", longer(MONOCLINIC, 1.11)),
            ("the other lattice's", TETRAGONAL),
        ],
    }
    cells = {"tetragonal": TETRAGONAL, "monoclinic": MONOCLINIC}
    # The defaults, then a stress case: crystals a sixth as strong, ice in 60 % of the frames.
    cases = [(name, name, {}) for name in cells] + [
        (f"{name}, weak", name, {"crystal_scale": 150.0, "ice_fraction": 0.6}) for name in cells
    ]
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for label, name, simulation in cases:
            (Path(folder) / label).mkdir()
            rows.append(
                measure(label, cells[name], wrong[name], args, Path(folder) / label, **simulation)
            )
    text = report(rows, args)
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        head, _, rest = doc.partition(START)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{START}\n{text}{END}{tail}")


if __name__ == "__main__":
    main()
