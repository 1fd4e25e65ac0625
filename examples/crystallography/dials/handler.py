"""DIALS spot finding as a function: ``xtal.find_peaks``'s job done by Debian's DIALS 3.12.

Baked into the image ``build.py`` makes (``/faas/function/handler.py``, with the ``xtal``
package beside it) and run by our action runtime under Debian's ``/usr/bin/python3``, where
DIALS lives. Input, by reference as the other steps take it::

    {"run_file": "/data/run.h5", "geom_file": "/data/run.geom", "start": 0, "stop": 10,
     "global_threshold": 20, "sigma_strong": 5, ...}       # optional DIALS settings

The frames are written as miniCBF files (``xtal.cbf``, geometry from the ``.geom``) into a
temporary folder, then ``dials.import`` (each frame a still) and ``dials.find_spots`` run on
them. The answer has ``find_peaks``'s shape, so the two compare directly::

    {"settings": {...}, "dials_version": "3.12", "seconds": {...},
     "frames": [{"event": 0, "peaks": [[fs, ss, 1/d in nm⁻¹, intensity], ...]}, ...]}

Positions are DIALS' centroids (``xyzobs.px.value``) in continuous panel pixels (the first
pixel's corner at 0, as in CrystFEL); intensities are DIALS' summed signal
(``intensity.sum.value``, not background-subtracted). Bad input answers ``{"error": "..."}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: DIALS settings this function accepts, with their defaults: chosen to match
#: ``xtal.find_peaks``'s defaults (ADU floor 20, 2..200 pixels per spot); the dispersion
#: thresholds are DIALS' own (see docs/crystallography.md, "DIALS").
SETTINGS = {
    "global_threshold": 20.0,  # ADU, DIALS' floor for a strong pixel (peakfinder8 threshold)
    "sigma_strong": 3.0,  # σ above the local mean for a strong pixel
    "sigma_background": 6.0,  # index of dispersion cut that tells background from signal
    "kernel_size": 3,  # half-width of the local window (7 × 7 pixels)
    "min_local": 2,  # strong pixels needed in the window
    "min_spot_size": 2,  # pixels per spot (peakfinder8 min-pix-count)
    "max_spot_size": 200,  # (max-pix-count)
    "gain": 1.0,  # ADU per photon
}
#: Seconds each DIALS command may take before the function gives up on it.
COMMAND_TIMEOUT_S = 600
#: Mount points of the container that are no data (system files, the runtime's own).
_SYSTEM_MOUNTS = ("/", "/proc", "/dev", "/sys", "/tmp", "/etc", "/faas", "/run")


def main(args: dict) -> dict:
    """Find spots with DIALS in frames ``start``..``stop - 1`` of a run (see the module)."""
    try:
        run_file, geom_file, start, stop, settings = _checked(args)
    except ValueError as err:
        return {"error": str(err)}
    from xtal.cbf import write_cbf_frames
    from xtal.errors import CrystallographyError
    from xtal.geometry import read_geom

    seconds = {}
    with tempfile.TemporaryDirectory(prefix="xtal-dials-") as work:
        folder = Path(work)
        clock = time.perf_counter()
        try:
            geometry = read_geom(geom_file)
            files = write_cbf_frames(run_file, geom_file, start, stop, folder / "frames")
        except CrystallographyError as err:
            return {"error": str(err)}
        seconds["write_cbf"] = time.perf_counter() - clock
        env = {**os.environ, "HOME": work, "MPLCONFIGDIR": work}
        commands = {
            "import": [
                "dials.import",
                *map(str, files),
                "convert_sequences_to_stills=True",
                "output.experiments=imported.expt",
            ],
            "find_spots": [
                "dials.find_spots",
                "imported.expt",
                "output.reflections=strong.refl",
                "spotfinder.mp.nproc=1",
                f"spotfinder.threshold.dispersion.gain={settings['gain']}",
                f"spotfinder.threshold.dispersion.global_threshold={settings['global_threshold']}",
                f"spotfinder.threshold.dispersion.sigma_strong={settings['sigma_strong']}",
                f"spotfinder.threshold.dispersion.sigma_background={settings['sigma_background']}",
                "spotfinder.threshold.dispersion.kernel_size="
                f"{settings['kernel_size']},{settings['kernel_size']}",
                f"spotfinder.threshold.dispersion.min_local={settings['min_local']}",
                f"spotfinder.filter.min_spot_size={settings['min_spot_size']}",
                f"spotfinder.filter.max_spot_size={settings['max_spot_size']}",
            ],
        }
        for step, command in commands.items():
            clock = time.perf_counter()
            failed = _run(command, folder, env)
            seconds[step] = time.perf_counter() - clock
            if failed:
                return {"error": f"{command[0]} failed: {failed}"}
        clock = time.perf_counter()
        frames = _spots(folder / "strong.refl", geometry, start, stop)
        seconds["read_spots"] = time.perf_counter() - clock
    return {
        "settings": settings,
        "dials_version": _dials_version(),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "frames": frames,
    }


def _checked(args: dict) -> tuple[str, str, int, int, dict]:
    """The input, checked: absolute paths that exist here, whole frame numbers, known settings.

    Raises:
        ValueError: the message names the key, the rule and the fix.
    """
    if not isinstance(args, dict):
        raise ValueError("the input must be a JSON object with run_file, geom_file, start, stop")
    missing = [k for k in ("run_file", "geom_file", "start", "stop") if k not in args]
    if missing:
        raise ValueError(f"the input needs run_file, geom_file, start and stop; missing: {', '.join(missing)}")  # fmt: skip
    unknown = sorted(set(args) - {"run_file", "geom_file", "start", "stop", *SETTINGS})
    if unknown:
        raise ValueError(f"unknown input {unknown[0]!r}; settings are {', '.join(SETTINGS)}")
    for key in ("start", "stop"):
        if isinstance(args[key], bool) or not isinstance(args[key], int):
            raise ValueError(f"{key!r} must be a whole frame number, not {args[key]!r}")
    for key in ("run_file", "geom_file"):
        path = args[key]
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{key!r} must be an absolute path inside the function's container, not {path!r}")  # fmt: skip
        if not os.path.isfile(path):
            raise ValueError(
                f"{key} {path} is not a file in the function's container. Data reach "
                "functions only through the server's data mounts (c.FaaSSite.data_mounts, "
                f"host folder -> container path); mounted here: {', '.join(_data_mounts()) or 'none'}"  # noqa: E501
            )
    settings = dict(SETTINGS)
    for key in set(args) & set(SETTINGS):
        value = args[key]
        kind = int if isinstance(SETTINGS[key], int) else float
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key!r} must be a number >= 0, not {value!r}")
        if kind is int and value != int(value):
            raise ValueError(f"{key!r} must be a whole number, not {value!r}")
        settings[key] = kind(value)
    if settings["min_spot_size"] > settings["max_spot_size"]:
        raise ValueError(f"the spot-size window {settings['min_spot_size']}..{settings['max_spot_size']} is empty")  # fmt: skip
    return args["run_file"], args["geom_file"], args["start"], args["stop"], settings


def _data_mounts() -> list[str]:
    """Mount points of this container that are not system folders: the data mounts."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = sorted({line.split()[4] for line in lines if len(line.split()) > 4})
    return [
        p
        for p in points
        if not any(p == s or p.startswith(s.rstrip("/") + "/") for s in _SYSTEM_MOUNTS[1:])
        and p != "/"
    ]


def _run(command: list[str], folder: Path, env: dict) -> str:
    """Run a DIALS command in ``folder``; "" when it worked, else its last lines."""
    try:
        done = subprocess.run(
            command,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    except FileNotFoundError:
        return f"{command[0]} is not installed here (apt-get install dials)"
    except subprocess.TimeoutExpired:
        return f"no answer within {COMMAND_TIMEOUT_S} s"
    if done.returncode:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        return f"exit status {done.returncode}: " + " / ".join(tail)
    return ""


def _spots(path: Path, geometry, start: int, stop: int) -> list[dict]:
    """DIALS' strong spots per frame, as ``find_peaks`` lists peaks."""
    import numpy as np
    from dials.array_family import flex

    frames = [{"event": n, "peaks": []} for n in range(start, stop)]
    if not path.exists():  # DIALS writes no table when no frame has a spot
        return frames
    table = flex.reflection_table.from_file(str(path))
    if not len(table):
        return frames
    experiment = np.array(table["id"], dtype=int)
    fs, ss, _ = (np.array(c) for c in table["xyzobs.px.value"].parts())
    intensity = np.array(table["intensity.sum.value"])
    q = geometry.scattering_vectors(fs + geometry.min_fs, ss + geometry.min_ss)
    inverse_d = np.linalg.norm(q, axis=-1) * 10.0  # Å⁻¹ -> nm⁻¹
    order = np.lexsort((fs, ss, experiment))
    for n in order:
        frames[experiment[n]]["peaks"].append(
            [
                round(float(fs[n]), 3),
                round(float(ss[n]), 3),
                round(float(inverse_d[n]), 5),
                round(float(intensity[n]), 2),
            ]  # fmt: skip
        )
    return frames


def _dials_version() -> str:
    try:
        from dials.util.version import dials_version

        return dials_version().replace("DIALS ", "")
    except ImportError:
        return "unknown"
