"""xtal: the science core of the serial-crystallography example (simulate, find peaks, index,
merge, and CrystFEL's file formats). Each step takes paths and a frame range and returns JSON."""

from .cbf import write_cbf_frames
from .errors import CellError, CrystallographyError, GeometryError, RunFileError
from .geometry import Geometry, UnitCell, read_cell, read_geom, write_cell, write_geom
from .index import index
from .merge import merge
from .peaks import find_peaks
from .pipeline import process_chunk, process_run
from .simulate import MONOCLINIC, TETRAGONAL, simulate_run
from .stream import read_hkl, read_stream, write_hkl, write_stream, write_summary

__all__ = [
    "MONOCLINIC",
    "TETRAGONAL",
    "CellError",
    "CrystallographyError",
    "Geometry",
    "GeometryError",
    "RunFileError",
    "UnitCell",
    "find_peaks",
    "index",
    "merge",
    "process_chunk",
    "process_run",
    "read_cell",
    "read_geom",
    "read_hkl",
    "read_stream",
    "simulate_run",
    "write_cbf_frames",
    "write_cell",
    "write_geom",
    "write_hkl",
    "write_stream",
    "write_summary",
]
