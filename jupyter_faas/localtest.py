"""The local test: the function in its container next to the same call in the kernel.

Scientists trust a function when it gives the notebook's answer. The report
puts both results side by side with a verdict, the container's logs, wall
time and peak memory, as HTML in a notebook and as plain text elsewhere.
"""

from __future__ import annotations

import copy
import html
import json
import time
import traceback
from dataclasses import dataclass

from .builders import ContainerRun


@dataclass
class KernelRun:
    """The handler called in the kernel on the same input."""

    ok: bool
    result: object
    error: str = ""
    seconds: float = 0.0


def run_in_kernel(function, args: dict) -> KernelRun:
    """Call ``function(args)`` on a deep copy of ``args``; an exception is reported, not raised."""
    start = time.perf_counter()
    try:
        result = function(copy.deepcopy(args))
    except Exception:
        return KernelRun(False, None, traceback.format_exc(limit=-8), time.perf_counter() - start)
    return KernelRun(True, result, "", time.perf_counter() - start)


def _as_json(value) -> tuple[object, str]:
    """``value`` after a JSON round trip, or (None, reason) when it has no JSON form."""
    try:
        return json.loads(json.dumps(value)), ""
    except (TypeError, ValueError) as err:
        return None, str(err)


@dataclass
class TestReport:
    """Container and kernel results for one input, and whether they agree."""

    __test__ = False  # not a pytest test class

    name: str
    args: dict
    container: ContainerRun
    kernel: KernelRun | None

    @property
    def verdict(self) -> str:
        """ "equal", "different", "container failed" or "kernel failed"."""
        if not self.container.ok and self.container.status != "application error":
            return "container failed"
        if self.kernel is None:
            return "container only"
        if not self.kernel.ok:
            return "kernel failed"
        kernel_json, problem = _as_json(self.kernel.result)
        if problem:
            return "different"
        return "equal" if kernel_json == self.container.result else "different"

    @property
    def ok(self) -> bool:
        return self.verdict in ("equal", "container only")

    def _rows(self) -> list[tuple[str, str, str]]:
        c, k = self.container, self.kernel
        peak = f"{c.peak_memory_bytes / 2**20:.1f} MiB" if c.peak_memory_bytes else "n/a"
        kernel_result = "" if k is None else (_pretty(k.result) if k.ok else k.error)
        if k is not None and k.ok and _as_json(k.result)[1]:
            kernel_result += f"\n(not JSON-serialisable: {_as_json(k.result)[1]})"
        return [
            ("status", c.status, "" if k is None else ("success" if k.ok else "error")),
            ("result", _pretty(c.result), kernel_result),
            (
                "wall time",
                f"{c.seconds * 1000:.1f} ms",
                "" if k is None else f"{k.seconds * 1000:.1f} ms",
            ),
            ("peak memory", peak, ""),
        ]

    def __str__(self) -> str:
        lines = [f"{self.name}({json.dumps(self.args)}): {self.verdict}"]
        for label, container, kernel in self._rows():
            lines.append(f"  {label:<12} container: {container}")
            if kernel:
                lines.append(f"  {'':<12} kernel:    {kernel}")
        lines.append("  container logs:" if self.container.logs else "  container logs: (none)")
        lines.extend(f"    {line}" for line in self.container.logs)
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython's text/plain form (the dataclass repr would hide the verdict in noise).
        printer.text(str(self))

    def _repr_html_(self) -> str:
        colour = {"equal": "var(--jp-success-color1, green)"}.get(
            self.verdict, "var(--jp-error-color1, red)"
        )
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            f"<td style='text-align:left'><pre>{html.escape(container)}</pre></td>"
            f"<td style='text-align:left'><pre>{html.escape(kernel)}</pre></td></tr>"
            for label, container, kernel in self._rows()
        )
        logs = html.escape("\n".join(self.container.logs)) or "(none)"
        return (
            f"<div><b>{html.escape(self.name)}</b>: "
            f"<b style='color:{colour}'>{html.escape(self.verdict)}</b>"
            "<table><tr><th></th><th style='text-align:left'>container</th>"
            f"<th style='text-align:left'>kernel</th></tr>{rows}</table>"
            f"<details><summary>container logs</summary><pre>{logs}</pre></details></div>"
        )


def _pretty(value) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)
