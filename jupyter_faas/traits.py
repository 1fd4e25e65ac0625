"""Trait types of our own: classes chosen by entry-point name as well as by import path."""

from __future__ import annotations

from importlib.metadata import entry_points

from traitlets import TraitError, Type


class EntryPointType(Type):
    """A class trait that also accepts the name of an entry point in ``entry_point_group``.

    ``c.FaaSWorkspace.builder_class = "docker"`` and the full import path
    ``"jupyter_faas.deploy.local.DockerBuilder"`` choose the same class; the
    help text lists the names installed when it is rendered.
    """

    def __init__(self, *args, entry_point_group: str, **kwargs):
        self.entry_point_group = entry_point_group
        super().__init__(*args, **kwargs)

    def installed(self) -> dict[str, str]:
        """Entry-point names of this group and the classes they name."""
        return {
            ep.name: ep.value.replace(":", ".") for ep in entry_points(group=self.entry_point_group)
        }

    @property
    def help(self):
        names = ", ".join(f'"{name}" ({path})' for name, path in sorted(self.installed().items()))
        return f"{self._help}\n\nInstalled: {names or 'none registered'}."

    @help.setter
    def help(self, value):
        self._help = value

    def validate(self, obj, value):
        if isinstance(value, str):
            found = [ep for ep in entry_points(group=self.entry_point_group) if ep.name == value]
            if found:
                value = found[0].load()
        try:
            return super().validate(obj, value)
        except TraitError:
            names = ", ".join(sorted(self.installed())) or "none registered"
            raise TraitError(
                f"{self.name} = {value!r} is neither an installed {self.entry_point_group} "
                f"entry point ({names}) nor an importable {self.klass.__name__} class."
            ) from None
