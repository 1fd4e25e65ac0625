"""Frames as miniCBF files, the image format DIALS (and XDS, MOSFLM) read without plug-ins.

A miniCBF is a CIF text header (Pilatus-style ``# Key value`` lines that give the detector
distance, wavelength, pixel size and beam centre) followed by one MIME section holding the
pixels as signed 32-bit integers, compressed with CBF's byte-offset scheme: each pixel is the
difference to the one before, in 1 byte when it fits in -127..127, else the byte 0x80 and 2
bytes, else 0x80, the 2 bytes 0x8000 and 4 bytes (little-endian).

The header convention is ``GENERIC_MINI``, which dxtbx (DIALS' image library) keeps for
simulated pixel-array data: its ``FormatCBFMini`` reads it, whereas ``FormatCBFMiniPilatus``
would insist on the panel being made of Pilatus modules (487 × 195 pixels with gaps). Bad
pixels (the geometry's flags, bad regions and mask) are written as -2, Pilatus' value for
bad pixels, below the trusted range DIALS derives from the header (-1 up to ``Count_cutoff``).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import numpy as np

from .errors import CrystallographyError, RunFileError
from .geometry import Geometry, frame_count, read_frames, read_geom

#: The 4 bytes after which a CBF's binary data start.
BINARY_START = b"\x0c\x1a\x04\xd5"
#: Written for bad pixels: below DIALS' trusted range (which starts at -1).
BAD_PIXEL = -2
#: Largest trusted count; Pilatus detectors write 1048500 here.
COUNT_CUTOFF = 1048500
#: Padding after the binary data, as Pilatus detectors write it.
PADDING = 4095


def compress_byte_offset(values: np.ndarray) -> bytes:
    """CBF byte-offset compression of integers (read in C order).

    Raises:
        CrystallographyError: a value does not fit in a signed 32-bit integer.
    """
    flat = np.asarray(values).reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < -(2**31) or flat.max() > 2**31 - 1):
        raise CrystallographyError("CBF pixels must fit in signed 32-bit integers")
    delta = np.diff(flat, prepend=0)
    small = np.abs(delta) <= 127
    medium = ~small & (np.abs(delta) <= 32767)
    large = ~small & ~medium
    size = np.where(small, 1, np.where(medium, 3, 7))
    start = np.cumsum(size) - size
    out = np.zeros(int(size.sum()), dtype=np.uint8)
    out[start[small]] = delta[small].astype(np.int8).view(np.uint8)
    escaped = start[~small]
    out[escaped] = 0x80
    pairs = delta[medium].astype("<i2").view(np.uint8).reshape(-1, 2)
    out[start[medium, None] + [1, 2]] = pairs
    out[start[large, None] + [1, 2]] = [0x00, 0x80]
    quads = delta[large].astype("<i4").view(np.uint8).reshape(-1, 4)
    out[start[large, None] + [3, 4, 5, 6]] = quads
    return out.tobytes()


def decompress_byte_offset(data: bytes, count: int) -> np.ndarray:
    """The ``count`` integers that ``compress_byte_offset`` packed into ``data`` (int32).

    Raises:
        CrystallographyError: ``data`` ends early.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    deltas = np.empty(count, dtype=np.int64)
    at = 0
    for n in range(count):  # plain loop: only tests read our files back this way
        if at >= len(raw):
            raise CrystallographyError(f"byte-offset data end after {n} of {count} values")
        if raw[at] != 0x80:
            deltas[n] = np.int8(raw[at].view(np.int8))
            at += 1
            continue
        short = int(np.frombuffer(raw[at + 1 : at + 3].tobytes(), "<i2")[0])
        if short != -32768:
            deltas[n] = short
            at += 3
        else:
            deltas[n] = int(np.frombuffer(raw[at + 3 : at + 7].tobytes(), "<i4")[0])
            at += 7
    return np.cumsum(deltas).astype(np.int32)


def beam_centre(geometry: Geometry) -> tuple[float, float]:
    """Where the direct beam meets the panel, in continuous (fs, ss) pixels from the first
    pixel's corner: dxtbx's ``Beam_xy`` (fast, slow)."""
    fs, ss = geometry.panel_coordinates(np.array([0.0]), np.array([0.0]))
    return float(fs[0] - geometry.min_fs), float(ss[0] - geometry.min_ss)


def cbf_header(geometry: Geometry, name: str, exposure_s: float = 0.1) -> str:
    """The Pilatus-style header lines (``# Key value``) for one frame of ``geometry``."""
    if abs(geometry.fs_vector[0] * geometry.ss_vector[1] - geometry.fs_vector[1] * geometry.ss_vector[0]) < 1e-6:  # fmt: skip
        raise CrystallographyError("the panel's fs and ss directions are parallel")
    beam_fs, beam_ss = beam_centre(geometry)
    pixel = 1.0 / geometry.res
    return "\n".join(
        [
            "# Detector: xtal simulated pixel-array detector, S/N 0",
            "# 2026-01-01T00:00:00.000",
            f"# Pixel_size {pixel:.6e} m x {pixel:.6e} m",
            f"# Exposure_time {exposure_s:.7f} s",
            f"# Exposure_period {exposure_s:.7f} s",
            f"# Count_cutoff {COUNT_CUTOFF} counts",
            f"# Wavelength {geometry.wavelength:.6f} A",
            f"# Detector_distance {geometry.clen:.6f} m",
            f"# Beam_xy ({beam_fs:.3f}, {beam_ss:.3f}) pixels",
            "# Start_angle 0.0000 deg.",
            "# Angle_increment 0.0000 deg.",
            f"# Image_path: {name}",
        ]
    )


def write_cbf(path: str | Path, pixels: np.ndarray, geometry: Geometry) -> Path:
    """Write one frame (integers shaped like the panel, (ss, fs)) as a miniCBF file.

    Raises:
        CrystallographyError: the frame's shape is not the panel's, or a value does not fit
            in 32 bits.
    """
    path = Path(path)
    pixels = np.asarray(pixels)
    if pixels.shape != geometry.shape:
        raise CrystallographyError(
            f"a frame of shape {pixels.shape} does not fit the panel {geometry.shape} (ss, fs)"
        )
    slow, fast = pixels.shape
    packed = compress_byte_offset(pixels)
    md5 = base64.b64encode(hashlib.md5(packed).digest()).decode()
    text = (
        "###CBF: VERSION 1.5, written by xtal (examples/crystallography)\n\n"
        f"data_{path.stem}\n\n"
        '_array_data.header_convention "GENERIC_MINI"\n'
        "_array_data.header_contents\n;\n"
        f"{cbf_header(geometry, path.name)}\n;\n\n"
        "_array_data.data\n;\n"
        "--CIF-BINARY-FORMAT-SECTION--\n"
        "Content-Type: application/octet-stream;\n"
        '     conversions="x-CBF_BYTE_OFFSET"\n'
        "Content-Transfer-Encoding: BINARY\n"
        f"X-Binary-Size: {len(packed)}\n"
        "X-Binary-ID: 1\n"
        'X-Binary-Element-Type: "signed 32-bit integer"\n'
        "X-Binary-Element-Byte-Order: LITTLE_ENDIAN\n"
        f"Content-MD5: {md5}\n"
        f"X-Binary-Number-of-Elements: {pixels.size}\n"
        f"X-Binary-Size-Fastest-Dimension: {fast}\n"
        f"X-Binary-Size-Second-Dimension: {slow}\n"
        f"X-Binary-Size-Padding: {PADDING}\n\n"
    )
    tail = "\n--CIF-BINARY-FORMAT-SECTION----\n;\n\n"
    path.write_bytes(
        text.replace("\n", "\r\n").encode("ascii")
        + BINARY_START
        + packed
        + bytes(PADDING)
        + tail.replace("\n", "\r\n").encode("ascii")
    )
    return path


def read_cbf(path: str | Path) -> tuple[dict[str, str], np.ndarray]:
    """A miniCBF's ``# Key value`` header lines and its pixels (int32, (slow, fast)), as this
    module writes them (byte-offset compression)."""
    data = Path(path).read_bytes()
    at = data.index(BINARY_START)
    text = data[:at].decode("ascii", "replace").replace("\r\n", "\n")
    header: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# ") and len(line.split()) > 2:
            key, _, value = line[2:].partition(" ")
            header[key.rstrip(":")] = value.strip()
        elif line.startswith("X-Binary-") and ":" in line:
            key, _, value = line.partition(":")
            header[key] = value.strip()
    fast = int(header["X-Binary-Size-Fastest-Dimension"])
    slow = int(header["X-Binary-Size-Second-Dimension"])
    packed = data[at + 4 : at + 4 + int(header["X-Binary-Size"])]
    return header, decompress_byte_offset(packed, fast * slow).reshape(slow, fast)


def frame_pixels(frame: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """A float frame as CBF integers: rounded, bad pixels ``BAD_PIXEL``, counts clipped to
    0..``COUNT_CUTOFF``."""
    pixels = np.clip(np.rint(np.nan_to_num(frame)), 0, COUNT_CUTOFF).astype(np.int32)
    pixels[bad] = BAD_PIXEL
    return pixels


def write_cbf_frames(
    run_file: str | Path,
    geom_file: str | Path,
    start: int,
    stop: int,
    out_dir: str | Path,
    template: str = "frame_{:05d}.cbf",
) -> list[Path]:
    """Frames ``start``..``stop - 1`` of a run as miniCBF files in ``out_dir``, named by
    ``template`` with the frame's number (its event), so DIALS sees the run's own detector.

    Returns:
        The files written, in frame order.

    Raises:
        CrystallographyError: as ``read_geom`` and ``read_frames`` (a missing run or
            geometry, a range outside the run).
    """
    geometry = read_geom(geom_file)
    total = frame_count(run_file, geometry)
    if not (0 <= start < stop <= total):  # the whole range, before any block is read
        raise RunFileError(
            f"frames {start}..{stop - 1} (start={start}, stop={stop}) are not in {run_file}: "
            f"it has {total} frames, so 0 <= start < stop <= {total}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for first in range(start, stop, 16):  # a few frames at a time: bounded memory
        frames, bad = read_frames(run_file, geometry, first, min(stop, first + 16))
        for n, (frame, mask) in enumerate(zip(frames, bad, strict=True)):
            path = out / template.format(first + n)
            written.append(write_cbf(path, frame_pixels(frame, mask), geometry))
    return written
