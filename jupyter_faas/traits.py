"""Trait types of our own: classes chosen by entry-point name as well as by import path."""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from traitlets import TraitError, Type

#: The value of a backend trait that picks by itself (Docker when its engine answers).
AUTO = "auto"


def backend_default() -> str:
    """The builder and invoker chosen by ``$FAAS_BACKEND`` ("docker", "process"), else "auto"."""
    return os.environ.get("FAAS_BACKEND", "").strip() or AUTO


class Pluggable:
    """Base of a swappable part's interface (builder, deployer, invoker).

    ``_required`` names the methods every implementation must define; one that misses
    any fails when its class is defined, not when a scientist first presses a button.
    A class with ``_abstract = True`` in its own body (a shared partial implementation)
    is not checked; its subclasses are.
    """

    _required: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_abstract"):
            return
        interface = next((b for b in cls.__mro__[1:] if b.__dict__.get("_required")), None)
        if interface is None:
            return
        missing = [m for m in interface._required if getattr(cls, m) is getattr(interface, m)]
        if missing:
            raise TypeError(f"{cls.__name__} must implement {', '.join(missing)}")


class EntryPointType(Type):
    """A class trait that also accepts the name of an entry point in ``entry_point_group``.

    ``c.FaaSWorkspace.builder_class = "docker"`` and the full import path
    ``"jupyter_faas.builders.docker.DockerBuilder"`` choose the same class; the
    help text lists the names installed when it is rendered. With
    ``allow_auto=True`` the value "auto" is kept as it is, for the owner to
    resolve when it makes the instance.
    """

    def __init__(self, *args, entry_point_group: str, allow_auto: bool = False, **kwargs):
        self.entry_point_group = entry_point_group
        self.allow_auto = allow_auto
        super().__init__(*args, **kwargs)

    @staticmethod
    def load(group: str, name: str) -> type:
        """The class that entry point ``name`` of ``group`` names."""
        found = [ep for ep in entry_points(group=group) if ep.name == name]
        if not found:
            raise TraitError(f"No {group} entry point is called {name!r}.")
        return found[0].load()

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

    def _resolve_classes(self) -> None:
        if isinstance(self.klass, str):
            self.klass = self._resolve_string(self.klass)
        if isinstance(self.default_value, str):
            self.default_value = self.validate(None, self.default_value)

    def validate(self, obj, value):
        if self.allow_auto and value == AUTO:
            return AUTO
        if isinstance(value, str) and value in self.installed():
            value = self.load(self.entry_point_group, value)
        try:
            return super().validate(obj, value)
        except TraitError:
            names = ", ".join(sorted(self.installed())) or "none registered"
            auto = f' or "{AUTO}"' if self.allow_auto else ""
            raise TraitError(
                f"{self.name} = {value!r} is neither an installed {self.entry_point_group} "
                f"entry point ({names}){auto} nor an importable {self.klass.__name__} class."
            ) from None
