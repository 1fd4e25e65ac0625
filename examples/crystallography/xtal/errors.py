"""One root error for the science core, so a function can report bad input as such."""

from __future__ import annotations


class CrystallographyError(ValueError):
    """Bad input to a step: a file, a dataset, a setting or a frame range. The message says the fix."""


class GeometryError(CrystallographyError):
    """A CrystFEL ``.geom`` file this core cannot use."""


class CellError(CrystallographyError):
    """A CrystFEL ``.cell`` file this core cannot use."""


class RunFileError(CrystallographyError):
    """An HDF5 run that is missing, lacks the frames dataset, or does not hold the asked frames."""
