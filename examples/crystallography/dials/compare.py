"""How DIALS' spots compare with ``xtal.find_peaks`` on the same frames.

    .venv/bin/python examples/crystallography/dials/compare.py IMAGE [--frames 45]

simulates the two lattices' runs (as tests/science does), runs the DIALS function of IMAGE
on them in a container (the run mounted read-only at /data, as a function server mounts
data) and prints the agreement and the time per frame. ``agreement`` is what
tests/science/test_dials_variant.py asserts on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from xtal.peaks import find_peaks  # noqa: E402
from xtal.simulate import MONOCLINIC, TETRAGONAL, simulate_run  # noqa: E402

#: Peaks that make a frame a hit (indexamajig's --min-peaks, the pipeline's default).
MIN_PEAKS = 15
#: Two peaks are the same spot when their centroids are this close, in pixels.
MATCH_PX = 1.0


def agreement(python: dict, dials: dict, min_peaks: int = MIN_PEAKS, radius: float = MATCH_PX) -> dict:  # fmt: skip
    """Agreement of DIALS' spots with ``find_peaks``' peaks on the same frames.

    Returns:
        ``frames``; ``hits_python``, ``hits_dials`` and ``hit_disagreements`` (frames one
        calls a hit, ≥ ``min_peaks``, and the other does not); ``peaks_python``,
        ``peaks_dials``; ``count_ratio_min``/``max`` (DIALS' count over Python's, on frames
        both call hits); ``matched_python`` (share of Python's peaks with a DIALS spot within
        ``radius`` px), ``matched_dials`` (the converse); ``median_offset_px`` and
        ``p95_offset_px`` of the matched pairs.
    """
    events = [f["event"] for f in python["frames"]]
    if [f["event"] for f in dials["frames"]] != events:
        raise ValueError("the two results are not of the same frames")
    hits = disagree = total_a = total_b = close_a = close_b = 0
    hits_b = 0
    ratios: list[float] = []
    offsets: list[np.ndarray] = []
    for ours, theirs in zip(python["frames"], dials["frames"], strict=True):
        a = np.array(ours["peaks"], dtype=float).reshape(-1, 4)
        b = np.array(theirs["peaks"], dtype=float).reshape(-1, 4)
        hit_a, hit_b = len(a) >= min_peaks, len(b) >= min_peaks
        hits += hit_a
        hits_b += hit_b
        disagree += hit_a != hit_b
        if hit_a and hit_b:
            ratios.append(len(b) / len(a))
        total_a += len(a)
        total_b += len(b)
        if len(a) and len(b):
            distance = np.hypot(a[:, :1] - b[None, :, 0], a[:, 1:2] - b[None, :, 1])
            nearest_a = distance.min(axis=1)
            close_a += int((nearest_a <= radius).sum())
            close_b += int((distance.min(axis=0) <= radius).sum())
            offsets.append(nearest_a[nearest_a <= radius])
    matched = np.concatenate(offsets) if offsets else np.zeros(0)
    return {
        "frames": len(events),
        "hits_python": hits,
        "hits_dials": hits_b,
        "hit_disagreements": disagree,
        "peaks_python": total_a,
        "peaks_dials": total_b,
        "count_ratio_min": round(min(ratios), 3) if ratios else None,
        "count_ratio_max": round(max(ratios), 3) if ratios else None,
        "matched_python": round(close_a / total_a, 4) if total_a else 1.0,
        "matched_dials": round(close_b / total_b, 4) if total_b else 1.0,
        "median_offset_px": round(float(np.median(matched)), 3) if len(matched) else None,
        "p95_offset_px": round(float(np.percentile(matched, 95)), 3) if len(matched) else None,
    }


def run_in_container(
    image: str, folder: Path, value: dict, labels: dict[str, str] | None = None
) -> tuple[dict, float]:
    """The function's answer for ``value`` (paths under /data = ``folder``), run once in a
    fresh container of ``image`` (removed after; ``labels`` added to ours), and the seconds
    ``main`` took in it."""
    from jupyter_faas import engine

    script = (
        "import json, sys, time; from handler import main; "
        "t = time.perf_counter(); r = main(json.loads(sys.argv[1])); "
        "r['wall_s'] = time.perf_counter() - t; print(json.dumps(r))"
    )
    output = engine.docker_client().containers.run(
        image,
        ["python3", "-c", script, json.dumps(value)],
        working_dir="/faas/function",
        volumes={str(folder): {"bind": "/data", "mode": "ro"}},
        labels={**(labels or {}), **engine.labels("xtal-dials-compare")},
        user="65534:65534",
        remove=True,
        stderr=False,
    )
    result = json.loads(output.decode().splitlines()[-1])
    return result, result.pop("wall_s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="the image build.py printed")
    parser.add_argument("--frames", type=int, default=45)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        for name, cell in (("tetragonal", TETRAGONAL), ("monoclinic", MONOCLINIC)):
            folder = Path(work) / name
            folder.mkdir()
            folder.chmod(0o755)
            Path(work).chmod(0o755)
            simulate_run(folder / "run.h5", folder / "run.geom", folder / "run.cell", args.frames, args.seed, cell)  # fmt: skip
            clock = time.perf_counter()
            python = find_peaks(folder / "run.h5", folder / "run.geom", 0, args.frames)
            python_s = time.perf_counter() - clock
            value = {"run_file": "/data/run.h5", "geom_file": "/data/run.geom", "start": 0}
            dials, dials_s = run_in_container(args.image, folder, {**value, "stop": args.frames})
            if "error" in dials:
                print(dials["error"], file=sys.stderr)
                return 1
            _, one_s = run_in_container(args.image, folder, {**value, "stop": 1})
            found = agreement(python, dials)
            print(json.dumps({
                "lattice": name,
                **found,
                "find_peaks_ms_per_frame": round(1000 * python_s / args.frames, 1),
                "dials_ms_per_frame": round(1000 * dials_s / args.frames, 1),
                "dials_seconds": dials["seconds"],
                "dials_one_frame_s": round(one_s, 2),
            }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
