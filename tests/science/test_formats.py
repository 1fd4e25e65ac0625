"""CrystFEL .geom and .cell files, HDF5 runs: round trips, the detector model, and bad input."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
from xtal.errors import CellError, GeometryError, RunFileError
from xtal.geometry import (
    format_geom,
    frame_count,
    read_cell,
    read_frames,
    read_geom,
    write_cell,
    write_geom,
)
from xtal.simulate import MONOCLINIC, TETRAGONAL, detector


def test_geom_round_trip(tmp_path):
    geometry = dataclasses.replace(
        detector((300, 200)), fs_vector=(0.0, 1.0), ss_vector=(-1.0, 0.0)
    )
    write_geom(tmp_path / "d.geom", geometry)
    read = read_geom(tmp_path / "d.geom")
    for field in dataclasses.fields(geometry):
        expected, actual = getattr(geometry, field.name), getattr(read, field.name)
        if isinstance(expected, float):
            assert actual == pytest.approx(expected, rel=1e-6), field.name
        else:
            assert actual == expected, field.name


@pytest.mark.parametrize("cell", [TETRAGONAL, MONOCLINIC])
def test_cell_round_trip(tmp_path, cell):
    write_cell(tmp_path / "c.cell", cell)
    read = read_cell(tmp_path / "c.cell")
    assert read.parameters == pytest.approx(cell.parameters, abs=1e-3)
    assert (read.lattice_type, read.centering, read.unique_axis) == (
        cell.lattice_type,
        cell.centering,
        cell.unique_axis,
    )
    assert read.real_basis() == pytest.approx(cell.real_basis(), abs=1e-3)


def test_cell_in_nm_and_comments(tmp_path):
    (tmp_path / "c.cell").write_text(
        "CrystFEL unit cell file version 1.0\n; a comment\nlattice_type = monoclinic\n"
        "unique_axis = b\ncentering = P\na = 4.82 nm\nb = 62.5 A\nc = 55.3 A\n"
        "al = 90 deg\nbe = 107.4 deg ; obtuse\nga = 90 deg\n"
    )
    cell = read_cell(tmp_path / "c.cell")
    assert cell.a == pytest.approx(48.2)
    assert cell.beta == pytest.approx(107.4)
    assert cell.unique_axis == "b"


def test_photon_energy_instead_of_wavelength(tmp_path):
    text = format_geom(detector()).replace("wavelength = 1.305097e-10", "photon_energy = 9500")
    (tmp_path / "e.geom").write_text(text)
    assert read_geom(tmp_path / "e.geom").wavelength == pytest.approx(12398.4198 / 9500)


def test_scattering_angle_of_a_pixel():
    """|q| = 2 sin θ / λ with tan 2θ = r / clen, for a pixel r metres from the beam."""
    geometry = dataclasses.replace(
        detector((256, 320)), fs_vector=(0.0, 1.0), ss_vector=(-1.0, 0.0)
    )
    fs, ss = 100.5, 30.5
    # fs runs along +y and ss along −x from the corner.
    x = (geometry.corner_x - (ss - geometry.min_ss)) / geometry.res
    y = (geometry.corner_y + (fs - geometry.min_fs)) / geometry.res
    two_theta = np.arctan(np.hypot(x, y) / geometry.clen)
    q = geometry.scattering_vectors(np.array([fs]), np.array([ss]))[0]
    assert np.linalg.norm(q) == pytest.approx(2 * np.sin(two_theta / 2) / geometry.wavelength)
    assert np.arctan2(q[1], q[0]) == pytest.approx(np.arctan2(y, x))


def test_scattering_vectors_project_back_to_their_pixels():
    geometry = detector((256, 320))
    rng = np.random.default_rng(0)
    fs, ss = rng.uniform(0, 320, 50), rng.uniform(0, 256, 50)
    q = geometry.scattering_vectors(fs, ss)
    # Elastic scattering: every q ends on the Ewald sphere.
    s1 = q + np.array([0, 0, 1 / geometry.wavelength])
    assert np.linalg.norm(s1, axis=1) == pytest.approx(1 / geometry.wavelength)
    back_fs, back_ss = geometry.project(s1)
    assert back_fs == pytest.approx(fs) and back_ss == pytest.approx(ss)
    # The beam centre, where no scattering happens, is where corner_x/y say.
    centre = geometry.scattering_vectors(-geometry.corner_x, -geometry.corner_y)
    assert np.linalg.norm(centre) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("clen = 0.070000\n", ""), "missing clen"),
        (
            lambda t: t.replace("clen = 0.070000", "clen = /LCLS/detector0-EncoderValue"),
            "not a number",
        ),
        (lambda t: t.replace("wavelength = 1.305097e-10\n", ""), "photon_energy"),
        (lambda t: t + "q1/min_fs = 0\nq1/corner_x = 3\n", "exactly one panel"),
        (lambda t: t.replace("p0/fs = +1.000000x", "p0/fs = +1.0w"), "not a direction"),
        (lambda t: t.replace("dim0 = %", "dim0 = 0"), "dim0 = %"),
        (lambda t: t.replace("p0/ss = +1.000000y", "p0/ss = -2x"), "must not be parallel"),
        (lambda t: t + "this line has no equals sign\n", "not 'key = value'"),
        (lambda t: t + "bad_stop/min_fs = 3\nbad_stop/max_fs = 9\n", "bad region 'bad_stop' needs"),
        (lambda t: t + "mask_file = other.h5\n", "put the mask dataset in the run file"),
        (lambda t: t + "mask_good = good\n", "not an integer like 0x1"),
    ],
)
def test_malformed_geom_is_refused_with_the_fix(tmp_path, change, message):
    (tmp_path / "bad.geom").write_text(change(format_geom(detector())))
    with pytest.raises(GeometryError, match=message):
        read_geom(tmp_path / "bad.geom")


def test_missing_geom(tmp_path):
    with pytest.raises(GeometryError, match="cannot read the geometry file"):
        read_geom(tmp_path / "nowhere.geom")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = 10 A\n", "not a CrystFEL unit cell file"),
        ("CrystFEL unit cell file version 1.0\na = 79 A\nb = 79 A\nal = 90 deg\nbe = 90 deg\nga = 90 deg\n", "missing 'c = ...'"),
        ("CrystFEL unit cell file version 1.0\na = 79 A\nb = 79 A\nc = 38 furlongs\nal = 90 deg\nbe = 90 deg\nga = 90 deg\n", "unit must be"),
        ("CrystFEL unit cell file version 1.0\na = 79 A\nb = 79 A\nc = x A\nal = 90 deg\nbe = 90 deg\nga = 90 deg\n", "not a number"),
        ("CrystFEL unit cell file version 1.0\na = 79 A\nb = 79 A\nc = 38 A\nal = 170 deg\nbe = 100 deg\nga = 100 deg\n", "do not make a cell"),
        ("CrystFEL unit cell file version 1.0\nlattice_type = squarish\na = 79 A\nb = 79 A\nc = 38 A\nal = 90 deg\nbe = 90 deg\nga = 90 deg\n", "lattice_type"),
    ],
)  # fmt: skip
def test_malformed_cell_is_refused_with_the_fix(tmp_path, text, message):
    (tmp_path / "bad.cell").write_text(text)
    with pytest.raises(CellError, match=message):
        read_cell(tmp_path / "bad.cell")


def _run(tmp_path, shape=(3, 40, 50), data="/entry_1/data_1/data"):
    geometry = detector((40, 50))
    with h5py.File(tmp_path / "r.h5", "w") as handle:
        frames = np.ones(shape, dtype=np.float32)
        frames[:, 0, 0] = -1.0
        handle[data] = frames
    return tmp_path / "r.h5", geometry


def test_read_frames_flags_negative_pixels(tmp_path):
    run_file, geometry = _run(tmp_path)
    assert frame_count(run_file, geometry) == 3
    frames, bad = read_frames(run_file, geometry, 1, 3)
    assert frames.shape == (2, 40, 50) and frames.dtype == np.float32
    assert bad[:, 0, 0].all() and bad.sum() == 2


def test_bad_regions_and_flags_mask_pixels(tmp_path):
    run_file, geometry = _run(tmp_path)
    text = format_geom(geometry) + (
        "flag_morethan = 100\n"
        "bad_strip/min_fs = 5\nbad_strip/max_fs = 6\nbad_strip/min_ss = 0\nbad_strip/max_ss = 39\n"
        "bad_stop/min_x = -2\nbad_stop/max_x = 2\nbad_stop/min_y = -2\nbad_stop/max_y = 2\n"
        "bad_stop/panel = p0\n"
    )
    (tmp_path / "masked.geom").write_text(text)
    masked = read_geom(tmp_path / "masked.geom")
    with h5py.File(run_file, "a") as handle:
        handle[masked.data][0, 20, 30] = 500.0  # above flag_morethan
    frames, bad = read_frames(run_file, masked, 0, 1)
    assert bad[0, :, 5:7].all() and not bad[0, 1:, 4].any() and not bad[0, 1:, 7].any()
    assert bad[0, 20, 30]
    ss, fs = np.indices(masked.shape)
    x, y = masked.lab_xy(fs + 0.5, ss + 0.5)
    stop = (np.abs(x) <= 2) & (np.abs(y) <= 2)
    assert stop.sum() == 16 and bad[0][stop].all()
    assert bad.sum() == 40 * 2 + 16 + 1 + 1  # strip, stop, the bright pixel, the negative corner


@pytest.mark.parametrize("per_frame", [False, True])
def test_mask_dataset_good_and_bad_bits(tmp_path, per_frame):
    run_file, geometry = _run(tmp_path)
    masked = dataclasses.replace(geometry, mask="/entry_1/data_1/mask", mask_good=0x1, mask_bad=0x2)
    bits = np.ones(masked.shape, dtype=np.uint16)
    bits[3, 4] = 0  # the good bit missing
    bits[5, 6] = 0x3  # a bad bit set
    bits[7, 8] = 0x5  # an unrelated bit: still good
    with h5py.File(run_file, "a") as handle:
        handle[masked.mask] = np.stack([bits] * 3) if per_frame else bits
    _, bad = read_frames(run_file, masked, 1, 3)
    assert bad[:, 3, 4].all() and bad[:, 5, 6].all() and not bad[:, 7, 8].any()
    assert bad.sum() == 2 * 3  # and the negative corner pixel
    with pytest.raises(RunFileError, match="no mask dataset /nowhere"):
        read_frames(run_file, dataclasses.replace(masked, mask="/nowhere"), 0, 1)


@pytest.mark.parametrize(("start", "stop"), [(2, 4), (-1, 2), (2, 2), (5, 9)])
def test_frame_range_outside_the_run(tmp_path, start, stop):
    run_file, geometry = _run(tmp_path)
    with pytest.raises(RunFileError, match=r"it has 3 frames, so 0 <= start < stop <= 3"):
        read_frames(run_file, geometry, start, stop)


def test_missing_dataset_names_what_is_there(tmp_path):
    run_file, geometry = _run(tmp_path, data="/data/frames")
    with pytest.raises(RunFileError, match=r"no dataset /entry_1/data_1/data .*/data/frames"):
        read_frames(run_file, geometry, 0, 1)


def test_frames_of_another_detector(tmp_path):
    run_file, geometry = _run(tmp_path, shape=(3, 41, 50))
    with pytest.raises(RunFileError, match=r"needs \(frames, 40, 50\)"):
        read_frames(run_file, geometry, 0, 1)


def test_missing_or_non_hdf5_run(tmp_path):
    geometry = detector((40, 50))
    with pytest.raises(RunFileError, match="does not exist"):
        read_frames(tmp_path / "none.h5", geometry, 0, 1)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="cannot open"):
        read_frames(tmp_path / "text.h5", geometry, 0, 1)
