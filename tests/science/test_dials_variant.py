"""The DIALS variant of the peak search (examples/crystallography/dials) against ``find_peaks``.

The frames go to DIALS as miniCBF files written by ``xtal.cbf``; the image (base image +
Debian's ``dials`` + our runtime + the function) is built by its own script, reused when its
inputs are unchanged, and deployed as a blackbox action on a real function server (Docker
invoker), which gets the run by reference through a read-only data mount.

Agreement asked of DIALS' spot finder (its own dispersion algorithm, so not the identical
numbers the C port of peakfinder8 gives): the same hit/miss call (≥ 15 peaks) on every frame,
DIALS' count within ±15 % of Python's on every hit, ≥ 90 % of Python's peaks with a DIALS spot
within 1 px (and ≥ 90 % the other way), the matched centroids a median 0.1 px apart at most.

The image is ~2 GB and takes minutes to build, so it is kept after the tests (re-runs reuse
it); only images of this script with other inputs, found by its labels, are removed.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from support import running_function_server
from xtal.cbf import (
    BAD_PIXEL,
    beam_centre,
    compress_byte_offset,
    decompress_byte_offset,
    read_cbf,
    write_cbf_frames,
)
from xtal.errors import RunFileError
from xtal.geometry import read_frames, read_geom
from xtal.peaks import find_peaks
from xtal.simulate import TETRAGONAL, simulate_run

from jupyter_faas import engine
from jupyter_faas.deployers.openwhisk_rest import OpenWhiskClient

ROOT = Path(__file__).resolve().parents[2]
DIALS_DIR = ROOT / "examples" / "crystallography" / "dials"


def _load(name: str):
    """A script of examples/crystallography/dials as a module (the folder is no package: its
    name would shadow DIALS' own ``dials`` package)."""
    spec = importlib.util.spec_from_file_location(f"xtal_dials_{name}", DIALS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load("build")
compare = _load("compare")


def assert_agrees(python: dict, dials: dict) -> dict:
    found = compare.agreement(python, dials)
    assert found["peaks_python"] > 0 and found["hits_python"] > 0, found
    assert found["hit_disagreements"] == 0, found
    assert 0.85 <= found["count_ratio_min"] and found["count_ratio_max"] <= 1.15, found
    assert found["matched_python"] >= 0.9 and found["matched_dials"] >= 0.9, found
    assert found["median_offset_px"] <= 0.1, found
    return found


# -- the CBF writer, without Docker ----------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [0, 1, -1, 127, -127, 128, -128, 0],
        [0, 32767, 0, -32767, 0, 32768, -32768, 2**31 - 1, -(2**31), 0],
        list(np.random.default_rng(3).integers(-(2**20), 2**20, 500)),
    ],
)
def test_byte_offset_round_trips(values):
    packed = compress_byte_offset(np.array(values))
    assert decompress_byte_offset(packed, len(values)).tolist() == [int(v) for v in values]


def test_byte_offset_is_cbfs_encoding():
    # One byte per small step; 0x80 + int16; 0x80 + 0x8000 + int32 (CBF's byte_offset spec).
    assert compress_byte_offset(np.array([5, 3])) == bytes([5, 0xFE])
    assert compress_byte_offset(np.array([300])) == bytes([0x80, 0x2C, 0x01])
    assert compress_byte_offset(np.array([70000])) == bytes([0x80, 0x00, 0x80, 0x70, 0x11, 0x01, 0x00])  # fmt: skip


def test_frames_written_as_cbf_keep_pixels_bad_pixels_and_geometry(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    simulate_run(run / "run.h5", run / "run.geom", run / "run.cell", 4, 5, TETRAGONAL)
    files = write_cbf_frames(run / "run.h5", run / "run.geom", 1, 3, tmp_path / "cbf")
    assert [f.name for f in files] == ["frame_00001.cbf", "frame_00002.cbf"]
    geometry = read_geom(run / "run.geom")
    frames, bad = read_frames(run / "run.h5", geometry, 1, 3)
    for path, frame, mask in zip(files, frames, bad, strict=True):
        header, pixels = read_cbf(path)
        assert (pixels[mask] == BAD_PIXEL).all() and mask.any()
        assert np.array_equal(pixels[~mask], np.rint(frame[~mask]).astype(np.int32))
        assert header["Beam_xy"] == f"({-geometry.corner_x:.3f}, {-geometry.corner_y:.3f}) pixels"
        assert header["Detector_distance"] == f"{geometry.clen:.6f} m"
        assert header["Pixel_size"].startswith(f"{1 / geometry.res:.6e} m")
        assert header["Wavelength"] == f"{geometry.wavelength:.6f} A"
    with pytest.raises(RunFileError, match="it has 4 frames"):
        write_cbf_frames(run / "run.h5", run / "run.geom", 2, 20, tmp_path / "more")


def test_beam_centre_of_a_turned_panel():
    geometry = read_geom_text(
        "clen = 0.1\nres = 10000\nwavelength = 1e-10\np0/min_fs = 0\np0/max_fs = 99\n"
        "p0/min_ss = 0\np0/max_ss = 49\np0/fs = +y\np0/ss = -x\np0/corner_x = 30\n"
        "p0/corner_y = -40\n"
    )
    # The beam (0, 0) is 40 px along +y (fs) and 30 px along -x (ss) from the corner.
    assert beam_centre(geometry) == pytest.approx((40.0, 30.0))


def read_geom_text(text: str):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".geom") as f:
        f.write(text)
        f.flush()
        return read_geom(f.name)


# -- the image and the deployed function ------------------------------------------------------


@pytest.fixture(scope="module")
def dials_image(base_image, docker_client) -> str:
    """The DIALS image, built once (minutes) and then reused; older ones of the script go."""
    lines: list[str] = []
    built = build.build(base_image, echo=lines.append)
    again = build.build(base_image, echo=lines.append)
    assert again.reused and again.ref == built.ref, lines[-20:]
    build.prune(built.ref, echo=lines.append)
    labels = docker_client.images.get(built.ref).labels
    assert labels[engine.ROLE_LABEL] == "xtal-dials" and labels[build.INPUTS_LABEL] == built.key
    size, base = build.image_size(built.ref), build.image_size(base_image)
    print(f"\n{built.ref}: {size / 1e6:.0f} MB (base {base / 1e6:.0f} MB), "
          f"{'reused' if built.reused else f'built in {built.seconds:.0f} s'}")  # fmt: skip
    return built.ref


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> Path:
    """A small run in a folder the actions' user (uid 65534) can read."""
    folder = tmp_path_factory.mktemp("dials-run")
    folder.chmod(0o755)
    simulate_run(folder / "run.h5", folder / "run.geom", folder / "run.cell", 12, 5, TETRAGONAL)
    return folder


@pytest.mark.docker
def test_a_rebuild_with_the_same_inputs_reuses_the_image(dials_image, base_image):
    lines: list[str] = []
    again = build.build(base_image, echo=lines.append)
    assert again.reused and again.ref == dials_image
    assert lines == [f"xtal-dials: {dials_image} is up to date"]  # no build step ran
    assert build.image_size(dials_image) > build.image_size(base_image)


@pytest.mark.docker
def test_in_a_container_dials_agrees_with_find_peaks(dials_image, simulated, test_labels, tmp_path):
    frames = len(simulated.hit)
    tmp_path.chmod(0o755)  # the function runs as uid 65534
    for path in (simulated.run_file, simulated.geom_file):
        shutil.copy(path, tmp_path / path.name)
    value = {"run_file": "/data/run.h5", "geom_file": "/data/run.geom", "start": 0, "stop": frames}
    dials, _ = compare.run_in_container(dials_image, tmp_path, value, test_labels)
    assert "error" not in dials, dials
    assert dials["dials_version"].startswith("3.")
    python = find_peaks(simulated.run_file, simulated.geom_file, 0, frames)
    found = assert_agrees(python, dials)
    # The hit calls also match the simulation's truth on strong data like these.
    hits = [len(f["peaks"]) >= compare.MIN_PEAKS for f in dials["frames"]]
    assert hits == simulated.hit.tolist(), found


@pytest.mark.docker
def test_deployed_as_a_blackbox_action_it_agrees_and_refuses_bad_input(
    dials_image, shared_run, test_labels, tmp_path
):
    data = f"--FaaSSite.data_mounts={shared_run}=/data"
    with running_function_server(
        tmp_path,
        test_labels,
        "--DockerInvoker.prewarm_count=0",
        "--FunctionServer.max_action_memory_mb=2048",
        data,
        cwd=ROOT,
    ) as server:
        client = OpenWhiskClient(api_host=server.url, auth=server.key)
        exec_ = {"kind": "blackbox", "image": dials_image}
        limits = {"memory": 1024, "timeout": 300000}
        client.put_action("dials-spots", {"exec": exec_, "limits": limits})

        def invoke(value: dict) -> tuple[int, dict]:
            status, activation = client.invoke("dials-spots", value)
            if status == 202:  # the server's 60 s wait ran out (a cold start on a busy machine)
                activation = client.wait_activation(activation["activationId"], 300)
                status = 200 if activation["response"]["status"] == "success" else 502
            return status, activation

        chunk = {"run_file": "/data/run.h5", "geom_file": "/data/run.geom", "start": 2}
        status, activation = invoke({**chunk, "stop": 12})
        assert status == 200, (activation, server.log_tail())
        result = activation["response"]["result"]
        python = find_peaks(shared_run / "run.h5", shared_run / "run.geom", 2, 12)
        assert_agrees(python, result)
        assert set(result["seconds"]) == {"write_cbf", "import", "find_spots", "read_spots"}

        for value, says in [
            ({**chunk, "stop": 40}, "it has 12 frames"),
            ({**chunk, "stop": 4, "run_file": str(shared_run / "run.h5")}, "mounted here: /data"),
            ({**chunk, "stop": 4, "run_file": "/data/missing.h5"}, "is not a file in the function"),
            ({**chunk, "stop": 4, "geom_file": "run.geom"}, "must be an absolute path"),
            ({**chunk, "stop": 4, "sigma": 3}, "unknown input 'sigma'"),
        ]:
            status, activation = invoke(value)
            assert status == 502, activation
            assert activation["response"]["status"] == "application error", activation
            assert says in activation["response"]["result"]["error"], activation
