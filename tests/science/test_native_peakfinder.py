"""The C peak finder (examples/crystallography/native) against ``xtal.find_peaks``.

Built with its own script, run as the executable it is and as a ``wsk action create
--native`` action on a real function server (Docker invoker), reading frames by reference.
Agreement asked of it: every frame's peak count within 1 of Python's, at least 98 % of
Python's peaks matched within 0.5 px, matched intensities within 0.1 ADU (the float32 sums
of numpy and the double sums of C round differently), 1/d within 1e-4 nm⁻¹.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import running_function_server
from xtal.geometry import read_geom, write_geom
from xtal.peaks import find_peaks
from xtal.simulate import TETRAGONAL, simulate_run

from jupyter_faas.deployers.openwhisk_rest import OpenWhiskClient

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "examples" / "crystallography" / "native" / "build.sh"


def build(out: Path) -> Path:
    """Run build.sh into ``out``; its zip."""
    done = subprocess.run([str(BUILD), str(out)], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(
            f"build.sh failed:\n{done.stderr}\nIt needs Debian's gcc, libhdf5-dev and zip "
            "(apt-get install gcc libhdf5-dev zip).",
            pytrace=False,
        )
    return out / "peakfinder.zip"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("native"))


def run_native(exe: Path, value: dict) -> dict:
    """Run the executable as the runtime does: the input as argv[1], the last stdout line back."""
    done = subprocess.run(
        [str(exe), json.dumps(value)], capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stdout.splitlines()[-1])


def agreement(python: dict, native: dict) -> dict:
    """How far the native result is from Python's, in the terms of the module docstring."""
    assert [f["event"] for f in native["frames"]] == [f["event"] for f in python["frames"]]
    matched = total = 0
    count_gap = intensity_gap = inverse_d_gap = 0.0
    for ours, theirs in zip(python["frames"], native["frames"], strict=True):
        a = np.array(ours["peaks"]).reshape(-1, 4)
        b = np.array(theirs["peaks"]).reshape(-1, 4)
        count_gap = max(count_gap, abs(len(a) - len(b)))
        total += len(a)
        if not len(a) or not len(b):
            continue
        distance = np.hypot(a[:, :1] - b[None, :, 0], a[:, 1:2] - b[None, :, 1])
        nearest = distance.argmin(axis=1)
        close = distance.min(axis=1) < 0.5
        matched += int(close.sum())
        intensity_gap = max(intensity_gap, np.abs(a[close, 3] - b[nearest[close], 3]).max())
        inverse_d_gap = max(inverse_d_gap, np.abs(a[close, 2] - b[nearest[close], 2]).max())
    return {
        "matched": matched / total if total else 1.0,
        "count_gap": count_gap,
        "intensity_gap": intensity_gap,
        "inverse_d_gap": inverse_d_gap,
        "peaks": total,
    }


def assert_agrees(python: dict, native: dict) -> None:
    found = agreement(python, native)
    assert found["peaks"] > 0, found
    assert found["matched"] >= 0.98, found
    assert found["count_gap"] <= 1, found
    assert found["intensity_gap"] <= 0.1, found
    assert found["inverse_d_gap"] <= 1e-4, found
    assert native["settings"] == python["settings"]


def test_build_is_reproducible_and_shaped_for_wsk_native(built, tmp_path):
    again = build(tmp_path / "again")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (built, again)]
    assert digest[0] == digest[1]
    with zipfile.ZipFile(built) as archive:
        (entry,) = archive.infolist()
    assert entry.filename == "exec" and (entry.external_attr >> 16) & 0o111
    # Static (no PT_INTERP program header): it runs in any image, whatever its libraries.
    elf = (built.parent / "exec").read_bytes()
    (table,), (size, count) = (
        struct.unpack_from("<Q", elf, 0x20),
        struct.unpack_from("<HH", elf, 0x36),
    )
    kinds = [struct.unpack_from("<I", elf, table + n * size)[0] for n in range(count)]
    assert elf[:4] == b"\x7fELF" and 3 not in kinds, kinds


def test_agrees_with_find_peaks(built, simulated):
    frames = len(simulated.hit)
    value = {"run_file": str(simulated.run_file), "geom_file": str(simulated.geom_file)}
    python = find_peaks(simulated.run_file, simulated.geom_file, 0, frames)
    native = run_native(built.parent / "exec", {**value, "start": 0, "stop": frames})
    assert_agrees(python, native)
    settings = {"min_snr": 4.0, "threshold": 30.0, "min_pix_count": 3, "local_bg_radius": 4}
    python = find_peaks(simulated.run_file, simulated.geom_file, 5, 15, **settings)
    native = run_native(built.parent / "exec", {**value, "start": 5, "stop": 15, **settings})
    assert_agrees(python, native)


def test_bad_regions_a_mask_and_a_turned_panel_count_alike(built, simulated, tmp_path):
    run_file = tmp_path / "masked.h5"
    shutil.copy(simulated.run_file, run_file)
    geometry = read_geom(simulated.geom_file)
    ss, fs = geometry.shape
    mask = np.full((ss, fs), 0b01, dtype=np.uint16)  # good: bit 0 set, bit 1 clear
    mask[100:140, 300:380] = 0b11
    mask[400:, :60] = 0b00
    with h5py.File(run_file, "a") as handle:
        handle["/entry_1/mask"] = mask
    turned = dataclasses.replace(
        geometry,
        fs_vector=(0.0, 1.0),
        ss_vector=(-1.0, 0.0),
        corner_x=geometry.corner_y + ss,
        corner_y=geometry.corner_x,
        bad_regions=(("fs", 200, 230, 0, 511), ("xy", -40, 40, 60, 90)),
        mask="/entry_1/mask",
        mask_good=0b01,
        mask_bad=0b10,
    )
    geom_file = tmp_path / "turned.geom"
    write_geom(geom_file, turned)
    python = find_peaks(run_file, geom_file, 0, 12)
    native = run_native(
        built.parent / "exec",
        {"run_file": str(run_file), "geom_file": str(geom_file), "start": 0, "stop": 12},
    )
    assert_agrees(python, native)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not json", "must be a JSON object"),
        ({"run_file": "r.h5", "start": 0, "stop": 1}, "needs run_file, geom_file, start and stop"),
        ({"start": "0"}, "'start' must be a number"),
        ({"start": 0.5}, "'start' must be an integer"),
        ({"min_sn": 3}, "unknown input 'min_sn'"),
        ({"min_pix_count": 5, "max_pix_count": 2}, "pixel-count window 5..2 is empty"),
        ({"geom_file": "/nowhere.geom"}, "cannot read the geometry file /nowhere.geom"),
        ({"run_file": "/nowhere.h5"}, "cannot open /nowhere.h5 as HDF5"),
        ({"start": 40, "stop": 99}, "are not in"),
    ],
)
def test_bad_input_answers_a_json_error(built, simulated, value, says):
    if isinstance(value, dict):
        value = {
            "run_file": str(simulated.run_file),
            "geom_file": str(simulated.geom_file),
            "start": 0,
            "stop": 2,
            **value,
        }
        if "needs" in says:
            del value["geom_file"]
        value = json.dumps(value)
    done = subprocess.run(
        [str(built.parent / "exec"), value], capture_output=True, text=True, timeout=60
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert list(result) == ["error"] and says in result["error"], result


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> Path:
    """A small run in a folder the actions' user (uid 65534) can read."""
    folder = tmp_path_factory.mktemp("shared-run")
    folder.chmod(0o755)
    simulate_run(folder / "run.h5", folder / "run.geom", folder / "run.cell", 12, 5, TETRAGONAL)
    return folder


@pytest.mark.docker
def test_deployed_as_a_native_action_it_agrees_on_a_chunk(
    built, shared_run, base_image, test_labels, tmp_path
):
    data = f"--FaaSSite.data_mounts={shared_run}=/data"
    with running_function_server(
        tmp_path, test_labels, "--DockerInvoker.prewarm_count=0", data, cwd=ROOT
    ) as server:
        client = OpenWhiskClient(api_host=server.url, auth=server.key)
        code = base64.b64encode(built.read_bytes()).decode()
        # What `wsk action create peakfinder --native peakfinder.zip` sends.
        exec_ = {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": code}
        client.put_action("peakfinder", {"exec": exec_, "limits": {"memory": 256}})
        stored = client.get_action("peakfinder")
        assert stored["exec"]["kind"] == "blackbox" and stored["exec"]["binary"] is True

        chunk = {"run_file": "/data/run.h5", "geom_file": "/data/run.geom", "start": 4}
        status, activation = client.invoke("peakfinder", {**chunk, "stop": 12})
        assert status == 200, (activation, server.log_tail())
        python = find_peaks(shared_run / "run.h5", shared_run / "run.geom", 4, 12)
        assert_agrees(python, activation["response"]["result"])

        status, activation = client.invoke("peakfinder", {**chunk, "stop": 40})
        assert status == 502 and activation["response"]["status"] == "application error"
        assert "are not in /data/run.h5" in activation["response"]["result"]["error"]
