"""CrystFEL detector geometry (``.geom``) and unit cell (``.cell``) files, read and written,
and the frames of a run (HDF5) read as the geometry describes them.

Only what a single-panel detector at normal incidence needs: the formats are described in
CrystFEL's ``crystfel_geometry(5)`` and ``cell_explorer(1)`` man pages. Coordinates follow
CrystFEL: a continuous pixel coordinate ``(fs, ss)`` has the corner of the panel's first pixel
at (0, 0), so a pixel's centre is at index + 0.5; lab x and y are in pixels from the beam,
z runs along the beam.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .errors import CellError, GeometryError, RunFileError

#: h·c in eV·Å, to turn a photon energy into a wavelength.
HC_EV_ANGSTROM = 12398.4198

_DIRECTION = re.compile(r"([+-]?\s*[0-9.]*)\s*([xyz])")


@dataclass(frozen=True)
class Geometry:
    """A single panel: where it is, which pixels are bad, and where its frames live."""

    wavelength: float  # Å
    clen: float  # m, sample to detector
    res: float  # pixels per metre
    corner_x: float  # pixels, beam to the corner of the first pixel
    corner_y: float
    min_fs: int
    max_fs: int
    min_ss: int
    max_ss: int
    fs_vector: tuple[float, float] = (1.0, 0.0)  # lab (x, y) of one step along fs
    ss_vector: tuple[float, float] = (0.0, 1.0)
    data: str = "/entry_1/data_1/data"
    flag_lessthan: float | None = 0.0
    flag_morethan: float | None = None
    adu_per_photon: float = 1.0
    panel: str = "p0"
    #: Rectangles of bad pixels, inclusive: ("fs", min_fs, max_fs, min_ss, max_ss) in panel
    #: pixels, or ("xy", min_x, max_x, min_y, max_y) in pixels from the beam.
    bad_regions: tuple[tuple[str, float, float, float, float], ...] = ()
    #: A mask dataset in the run file, (ss, fs) or one per frame, and its good and bad bits:
    #: a pixel is good when all ``mask_good`` bits are set and no ``mask_bad`` bit is.
    mask: str | None = None
    mask_good: int = 0
    mask_bad: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(ss, fs) size of the panel's frames."""
        return (self.max_ss - self.min_ss + 1, self.max_fs - self.min_fs + 1)

    @property
    def photon_energy(self) -> float:
        """eV."""
        return HC_EV_ANGSTROM / self.wavelength

    def lab_xy(self, fs: np.ndarray, ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels from the beam in the detector plane for continuous panel coordinates."""
        fs = np.asarray(fs, dtype=float) - self.min_fs
        ss = np.asarray(ss, dtype=float) - self.min_ss
        x = self.corner_x + fs * self.fs_vector[0] + ss * self.ss_vector[0]
        y = self.corner_y + fs * self.fs_vector[1] + ss * self.ss_vector[1]
        return x, y

    def panel_coordinates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous (fs, ss) for lab pixels from the beam: the inverse of ``lab_xy``."""
        matrix = np.array(
            [[self.fs_vector[0], self.ss_vector[0]], [self.fs_vector[1], self.ss_vector[1]]]
        )
        offsets = np.stack([np.asarray(x) - self.corner_x, np.asarray(y) - self.corner_y])
        fs, ss = np.linalg.solve(matrix, offsets.reshape(2, -1)).reshape(offsets.shape)
        return fs + self.min_fs, ss + self.min_ss

    def scattering_vectors(self, fs: np.ndarray, ss: np.ndarray) -> np.ndarray:
        """q = s1 − s0 in Å⁻¹ for panel coordinates, |s0| = |s1| = 1/λ, beam along +z."""
        x, y = self.lab_xy(fs, ss)
        lab = np.stack([x / self.res, y / self.res, np.full(np.shape(x), self.clen)], axis=-1)
        s1 = lab / np.linalg.norm(lab, axis=-1, keepdims=True) / self.wavelength
        s1[..., 2] -= 1.0 / self.wavelength
        return s1

    def project(self, s1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Panel coordinates where diffracted beams along ``s1`` (N×3, +z) hit the detector plane."""
        scale = self.clen * self.res / s1[:, 2]
        return self.panel_coordinates(s1[:, 0] * scale, s1[:, 1] * scale)

    def pixel_radius(self) -> np.ndarray:
        """Distance of every pixel centre from the beam, in pixels, shaped like a frame."""
        ss, fs = np.indices(self.shape, dtype=float)
        x, y = self.lab_xy(fs + self.min_fs + 0.5, ss + self.min_ss + 0.5)
        return np.hypot(x, y)

    def highest_resolution(self) -> float:
        """Smallest d-spacing (Å) seen on the panel, at its farthest corner."""
        fs = np.array([self.min_fs, self.max_fs + 1, self.min_fs, self.max_fs + 1], dtype=float)
        ss = np.array([self.min_ss, self.min_ss, self.max_ss + 1, self.max_ss + 1], dtype=float)
        q = np.linalg.norm(self.scattering_vectors(fs, ss), axis=-1)
        return float(1.0 / q.max())

    def bad_pixels(self, frames: np.ndarray) -> np.ndarray:
        """Pixels flagged by value (``flag_lessthan``, ``flag_morethan``), non-finite ones, and
        those in the bad regions, shaped like ``frames``."""
        bad = ~np.isfinite(frames)
        if self.flag_lessthan is not None:
            bad |= frames < self.flag_lessthan
        if self.flag_morethan is not None:
            bad |= frames > self.flag_morethan
        if self.bad_regions:
            ss, fs = np.indices(self.shape, dtype=float)
            fs += self.min_fs
            ss += self.min_ss
            x, y = self.lab_xy(fs + 0.5, ss + 0.5)
            for kind, low_1, high_1, low_2, high_2 in self.bad_regions:
                first, second = (fs, ss) if kind == "fs" else (x, y)
                bad |= (first >= low_1) & (first <= high_1) & (second >= low_2) & (second <= high_2)
        return bad


def format_geom(geometry: Geometry) -> str:
    """The ``.geom`` text for a single-panel geometry."""
    p = geometry.panel

    def direction(vector: tuple[float, float]) -> str:
        return " ".join(f"{v:+.6f}{axis}" for v, axis in zip(vector, "xy", strict=True) if v)

    lines = [
        "; Single-panel geometry written by xtal (examples/crystallography)",
        f"wavelength = {geometry.wavelength * 1e-10:.6e}",
        f"; photon_energy = {geometry.photon_energy:.2f} eV",
        f"clen = {geometry.clen:.6f}",
        f"res = {geometry.res:.4f}",
        f"adu_per_photon = {geometry.adu_per_photon:g}",
        f"data = {geometry.data}",
        "dim0 = %",
        "dim1 = ss",
        "dim2 = fs",
    ]
    if geometry.flag_lessthan is not None:
        lines.append(f"flag_lessthan = {geometry.flag_lessthan:g}")
    if geometry.flag_morethan is not None:
        lines.append(f"flag_morethan = {geometry.flag_morethan:g}")
    if geometry.mask is not None:
        lines += [
            f"mask = {geometry.mask}",
            f"mask_good = {geometry.mask_good:#x}",
            f"mask_bad = {geometry.mask_bad:#x}",
        ]
    lines += [
        "",
        f"{p}/min_fs = {geometry.min_fs}",
        f"{p}/max_fs = {geometry.max_fs}",
        f"{p}/min_ss = {geometry.min_ss}",
        f"{p}/max_ss = {geometry.max_ss}",
        f"{p}/fs = {direction(geometry.fs_vector)}",
        f"{p}/ss = {direction(geometry.ss_vector)}",
        f"{p}/corner_x = {geometry.corner_x:.4f}",
        f"{p}/corner_y = {geometry.corner_y:.4f}",
    ]
    for number, (kind, low_1, high_1, low_2, high_2) in enumerate(geometry.bad_regions):
        first, second = ("fs", "ss") if kind == "fs" else ("x", "y")
        lines += [
            "",
            f"bad_region{number}/min_{first} = {low_1:g}",
            f"bad_region{number}/max_{first} = {high_1:g}",
            f"bad_region{number}/min_{second} = {low_2:g}",
            f"bad_region{number}/max_{second} = {high_2:g}",
        ]
    return "\n".join(lines) + "\n"


def write_geom(path: str | Path, geometry: Geometry) -> None:
    """Write ``format_geom``'s text."""
    Path(path).write_text(format_geom(geometry))


def _number(key: str, value: str, path: Path) -> float:
    try:
        return float(value.split()[0])
    except (ValueError, IndexError):
        raise GeometryError(
            f"{path}: '{key} = {value}' is not a number; this reader needs numeric values "
            f"(an HDF5 path for {key} is not supported: write the value itself)"
        ) from None


def _direction(key: str, value: str, path: Path) -> tuple[float, float]:
    vector = {"x": 0.0, "y": 0.0, "z": 0.0}
    text = value.replace(" ", "")
    matches = _DIRECTION.findall(text)
    if not matches or "".join(f"{n}{a}" for n, a in matches) != text:
        raise GeometryError(f"{path}: '{key} = {value}' is not a direction like '+1.0x' or '-y'")
    for number, axis in matches:
        number = number.replace(" ", "")
        vector[axis] = float(number + "1" if number in ("", "+", "-") else number)
    if vector["z"]:
        raise GeometryError(f"{path}: '{key} = {value}': panels must lie in the detector plane")
    return vector["x"], vector["y"]


def read_geom(path: str | Path) -> Geometry:
    """Read a single-panel CrystFEL geometry file.

    Raises:
        GeometryError: the file is missing, has several panels, lacks a key this core needs
            (``photon_energy`` or ``wavelength``, ``clen``, ``res``, ``corner_x/y``,
            ``min/max_fs/ss``) or a value is malformed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise GeometryError(f"cannot read the geometry file {path}: {error.strerror}") from None
    globals_: dict[str, str] = {}
    panels: dict[str, dict[str, str]] = {}
    bad: dict[str, dict[str, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise GeometryError(f"{path}, line {number}: '{raw.strip()}' is not 'key = value'")
        key, value = (part.strip() for part in line.split("=", 1))
        if "/" in key and not key.startswith("/"):
            panel, name = key.split("/", 1)
            if panel.startswith("bad"):
                bad.setdefault(panel, {})[name] = value
            elif not panel.startswith("rigid_group"):  # rigid groups: nothing to do for one panel
                panels.setdefault(panel, {})[name] = value
        else:
            globals_[key] = value
    if len(panels) != 1:
        names = ", ".join(sorted(panels)) or "none"
        raise GeometryError(
            f"{path}: this core needs exactly one panel, found {len(panels)} ({names}); "
            "describe the detector as one panel 'p0/...'"
        )
    ((panel, keys),) = panels.items()
    settings = {**globals_, **keys}  # panel values override global defaults, as in CrystFEL

    if "wavelength" in settings:
        wavelength = _number("wavelength", settings["wavelength"], path) * 1e10
    elif "photon_energy" in settings:
        wavelength = HC_EV_ANGSTROM / _number("photon_energy", settings["photon_energy"], path)
    else:
        raise GeometryError(f"{path}: set 'photon_energy = <eV>' or 'wavelength = <m>'")
    missing = [
        k
        for k in ("clen", "res", "corner_x", "corner_y", "min_fs", "max_fs", "min_ss", "max_ss")
        if k not in settings
    ]
    if missing:
        raise GeometryError(
            f"{path}: missing {', '.join(missing)} (e.g. '{panel}/{missing[0]} = ...')"
        )
    value = {k: _number(k, settings[k], path) for k in settings if k in _NUMERIC}
    if wavelength <= 0 or value["clen"] <= 0 or value["res"] <= 0:
        raise GeometryError(f"{path}: wavelength, clen and res must be positive")
    if settings.get("dim0", "%") != "%":
        raise GeometryError(f"{path}: 'dim0 = {settings['dim0']}': frames must be 'dim0 = %'")
    flags = {
        key: None if key not in settings else _number(key, settings[key], path)
        for key in ("flag_lessthan", "flag_morethan")
    }
    geometry = Geometry(
        wavelength=wavelength,
        clen=value["clen"],
        res=value["res"],
        corner_x=value["corner_x"],
        corner_y=value["corner_y"],
        min_fs=int(value["min_fs"]),
        max_fs=int(value["max_fs"]),
        min_ss=int(value["min_ss"]),
        max_ss=int(value["max_ss"]),
        fs_vector=_direction("fs", settings.get("fs", "+x"), path),
        ss_vector=_direction("ss", settings.get("ss", "+y"), path),
        data=settings.get("data", "/entry_1/data_1/data"),
        **flags,
        adu_per_photon=value.get("adu_per_photon", 1.0),
        panel=panel,
        bad_regions=tuple(_bad_region(name, keys, path) for name, keys in bad.items()),
        mask=settings.get("mask"),
        mask_good=_bits("mask_good", settings.get("mask_good", "0"), path),
        mask_bad=_bits("mask_bad", settings.get("mask_bad", "0"), path),
    )
    if "mask_file" in settings:
        raise GeometryError(
            f"{path}: 'mask_file' (a mask in another file) is not supported; "
            "put the mask dataset in the run file and name it with 'mask = /path'"
        )
    (fx, fy), (sx, sy) = geometry.fs_vector, geometry.ss_vector
    if abs(fx * sy - fy * sx) < 1e-6:
        raise GeometryError(f"{path}: {panel}/fs and {panel}/ss must not be parallel")
    if geometry.max_fs < geometry.min_fs or geometry.max_ss < geometry.min_ss:
        raise GeometryError(f"{path}: max_fs/max_ss must not be below min_fs/min_ss")
    return geometry


def _bits(key: str, value: str, path: Path) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise GeometryError(f"{path}: '{key} = {value}' is not an integer like 0x1") from None


def _bad_region(
    name: str, keys: dict[str, str], path: Path
) -> tuple[str, float, float, float, float]:
    for kind, (first, second) in (("fs", ("fs", "ss")), ("xy", ("x", "y"))):
        wanted = [f"min_{first}", f"max_{first}", f"min_{second}", f"max_{second}"]
        if all(key in keys for key in wanted):
            low_1, high_1, low_2, high_2 = (_number(f"{name}/{k}", keys[k], path) for k in wanted)
            return (kind, low_1, high_1, low_2, high_2)
    raise GeometryError(
        f"{path}: bad region '{name}' needs min_fs, max_fs, min_ss, max_ss "
        "(panel pixels) or min_x, max_x, min_y, max_y (pixels from the beam)"
    )


_NUMERIC = {
    "clen",
    "res",
    "corner_x",
    "corner_y",
    "min_fs",
    "max_fs",
    "min_ss",
    "max_ss",
    "adu_per_photon",
}


@dataclass(frozen=True)
class UnitCell:
    """Cell lengths in Å, angles in degrees, and the lattice they belong to."""

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    lattice_type: str = "triclinic"
    centering: str = "P"
    unique_axis: str = "c"

    @property
    def parameters(self) -> list[float]:
        return [self.a, self.b, self.c, self.alpha, self.beta, self.gamma]

    def real_basis(self) -> np.ndarray:
        """Rows a, b, c in Å: a along x, b in the xy plane (the usual crystallographic setting)."""
        al, be, ga = (math.radians(v) for v in (self.alpha, self.beta, self.gamma))
        cx = self.c * math.cos(be)
        cy = self.c * (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
        cz = math.sqrt(max(self.c**2 - cx**2 - cy**2, 0.0))
        return np.array(
            [
                [self.a, 0.0, 0.0],
                [self.b * math.cos(ga), self.b * math.sin(ga), 0.0],
                [cx, cy, cz],
            ]
        )

    @classmethod
    def from_basis(cls, basis: np.ndarray, like: UnitCell | None = None) -> UnitCell:
        """The cell of real-space rows a, b, c (Å), with the lattice description of ``like``."""
        a, b, c = (float(np.linalg.norm(v)) for v in basis)

        def angle(u: np.ndarray, v: np.ndarray) -> float:
            cosine = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
            return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))

        extra = {}
        if like is not None:
            extra = dict(
                lattice_type=like.lattice_type,
                centering=like.centering,
                unique_axis=like.unique_axis,
            )
        return cls(
            a, b, c, angle(basis[1], basis[2]), angle(basis[0], basis[2]),
            angle(basis[0], basis[1]), **extra,
        )  # fmt: skip


def hkl_within(basis: np.ndarray, d_min: float) -> np.ndarray:
    """All Miller indices (n×3) with d ≥ d_min for real-space rows ``basis`` (Å)."""
    limits = [math.ceil(np.linalg.norm(v) / d_min) for v in basis]
    grids = np.meshgrid(*(np.arange(-n, n + 1) for n in limits), indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    q = hkl @ np.linalg.inv(basis).T
    keep = (np.einsum("ij,ij->i", q, q) <= 1.0 / d_min**2) & np.any(hkl != 0, axis=1)
    return hkl[keep]


LATTICE_TYPES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "rhombohedral",
                 "hexagonal", "cubic")  # fmt: skip


def format_cell(cell: UnitCell) -> str:
    """The ``.cell`` text of a cell (CrystFEL unit cell file version 1.0)."""
    return (
        "CrystFEL unit cell file version 1.0\n\n"
        f"lattice_type = {cell.lattice_type}\n"
        f"centering = {cell.centering}\n"
        f"unique_axis = {cell.unique_axis}\n\n"
        f"a = {cell.a:.3f} A\nb = {cell.b:.3f} A\nc = {cell.c:.3f} A\n"
        f"al = {cell.alpha:.3f} deg\nbe = {cell.beta:.3f} deg\nga = {cell.gamma:.3f} deg\n"
    )


def write_cell(path: str | Path, cell: UnitCell) -> None:
    """Write ``format_cell``'s text."""
    Path(path).write_text(format_cell(cell))


def read_cell(path: str | Path) -> UnitCell:
    """Read a CrystFEL unit cell file (version 1.0).

    Raises:
        CellError: the file is missing, is not a CrystFEL cell file, lacks one of
            ``a b c al be ga``, or gives a value in units other than A/nm and deg/rad.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise CellError(f"cannot read the unit cell file {path}: {error.strerror}") from None
    lines = [line.split(";", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines or not lines[0].startswith("CrystFEL unit cell file version"):
        raise CellError(
            f"{path}: not a CrystFEL unit cell file "
            "(its first line must be 'CrystFEL unit cell file version 1.0')"
        )
    settings: dict[str, str] = {}
    for line in lines[1:]:
        if "=" not in line:
            raise CellError(f"{path}: '{line}' is not 'key = value'")
        key, value = (part.strip() for part in line.split("=", 1))
        settings[key] = value
    values = {}
    for key, units in (("a", "A"), ("b", "A"), ("c", "A"), ("al", "deg"), ("be", "deg"),
                       ("ga", "deg")):  # fmt: skip
        if key not in settings:
            raise CellError(f"{path}: missing '{key} = ...' (e.g. '{key} = 79.1 {units}')")
        parts = settings[key].split()
        try:
            number = float(parts[0])
        except (ValueError, IndexError):
            raise CellError(f"{path}: '{key} = {settings[key]}' is not a number") from None
        unit = parts[1] if len(parts) > 1 else units
        factor = {"A": 1.0, "nm": 10.0, "deg": 1.0, "rad": math.degrees(1.0)}.get(unit)
        if factor is None or (units == "A") != (unit in ("A", "nm")):
            raise CellError(f"{path}: '{key} = {settings[key]}': unit must be A or nm, deg or rad")
        values[key] = number * factor
    lattice = settings.get("lattice_type", "triclinic")
    if lattice not in LATTICE_TYPES:
        raise CellError(
            f"{path}: lattice_type '{lattice}' is not one of {', '.join(LATTICE_TYPES)}"
        )
    if min(values["a"], values["b"], values["c"]) <= 0:
        raise CellError(f"{path}: cell lengths must be positive")
    al, be, ga = values["al"], values["be"], values["ga"]
    if not (al + be + ga < 360 and al < be + ga and be < al + ga and ga < al + be):
        raise CellError(f"{path}: angles {al:g}, {be:g}, {ga:g} deg do not make a cell")
    return UnitCell(
        values["a"], values["b"], values["c"], al, be, ga,
        lattice_type=lattice,
        centering=settings.get("centering", "P"),
        unique_axis=settings.get("unique_axis", "c"),
    )  # fmt: skip


def frame_count(run_file: str | Path, geometry: Geometry) -> int:
    """Number of frames in a run, with the errors of ``read_frames``."""
    with _open_run(run_file) as handle:
        return int(_frames_dataset(handle, run_file, geometry).shape[0])


def read_frames(
    run_file: str | Path, geometry: Geometry, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``start``..``stop - 1`` of a run as float32, and their bad-pixel mask.

    Raises:
        RunFileError: the file cannot be opened, lacks ``geometry.data``, its frames do not
            match the panel, or the range is empty or outside the run.
    """
    with _open_run(run_file) as handle:
        dataset = _frames_dataset(handle, run_file, geometry)
        total = dataset.shape[0]
        if not (0 <= start < stop <= total):
            raise RunFileError(
                f"frames {start}..{stop - 1} (start={start}, stop={stop}) are not in {run_file}: "
                f"it has {total} frames, so 0 <= start < stop <= {total}"
            )
        frames = np.asarray(dataset[start:stop], dtype=np.float32)
        bad = geometry.bad_pixels(frames)
        if geometry.mask is not None:
            bad |= _masked(handle, run_file, geometry, start, stop)
    return frames, bad


def _masked(
    handle: h5py.File, run_file: str | Path, geometry: Geometry, start: int, stop: int
) -> np.ndarray:
    """Bad pixels by the geometry's mask dataset, for frames ``start``..``stop - 1``."""
    mask = handle.get(geometry.mask)
    if not isinstance(mask, h5py.Dataset):
        raise RunFileError(
            f"{run_file} has no mask dataset {geometry.mask} (the geometry's 'mask')"
        )
    if tuple(mask.shape) == geometry.shape:
        values = mask[()]
    elif mask.ndim == 3 and tuple(mask.shape[1:]) == geometry.shape:
        values = mask[start:stop]
    else:
        raise RunFileError(
            f"{run_file}:{geometry.mask} has shape {mask.shape}; the mask must be "
            f"{geometry.shape} or (frames, {geometry.shape[0]}, {geometry.shape[1]})"
        )
    values = np.asarray(values).astype(np.int64)
    good = ((values & geometry.mask_good) == geometry.mask_good) & (
        (values & geometry.mask_bad) == 0
    )
    return ~good


def _open_run(run_file: str | Path) -> h5py.File:
    try:
        return h5py.File(run_file, "r")
    except FileNotFoundError:
        raise RunFileError(f"run file {run_file} does not exist") from None
    except OSError as error:
        raise RunFileError(f"cannot open {run_file} as HDF5: {error}") from None


def _frames_dataset(handle: h5py.File, run_file: str | Path, geometry: Geometry) -> h5py.Dataset:
    dataset = handle.get(geometry.data)
    if not isinstance(dataset, h5py.Dataset):
        found: list[str] = []
        handle.visititems(lambda name, obj: found.append("/" + name) if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None)  # fmt: skip
        hint = f"; 3-D datasets there: {', '.join(found)}" if found else ""
        raise RunFileError(
            f"{run_file} has no dataset {geometry.data} (the geometry's 'data' key){hint}"
        )
    if dataset.ndim != 3 or tuple(dataset.shape[1:]) != geometry.shape:
        raise RunFileError(
            f"{run_file}:{geometry.data} has shape {dataset.shape}; the geometry's panel needs "
            f"(frames, {geometry.shape[0]}, {geometry.shape[1]})"
        )
    return dataset
