"""The local test: the function in its container next to the same call in the kernel.

Scientists trust a function when it gives the notebook's answer. The report
puts both results side by side with a verdict, the container's logs, wall
time and peak memory, as HTML in a notebook and as plain text elsewhere.
"""

from __future__ import annotations

import copy
import html
import json
import math
import time
import traceback
from dataclasses import dataclass, field
from functools import cached_property

from .builders import ContainerRun
from .display import shorten, tail


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


#: Relative tolerance of float comparisons when none is configured (c.FaaSWorkspace.float_tolerance).
FLOAT_TOLERANCE = 1e-9


@dataclass
class Comparison:
    """How the kernel's result compares with the container's.

    Attributes:
        verdict: "equal", "equal within tolerance" (some floats differ by at most the
            relative tolerance) or "different".
        ignored: Paths of the keys left out (``time``, ``stats.elapsed``, ``rows[0].t``).
        difference: The first difference found, for people ("" when there is none).
    """

    verdict: str
    ignored: list[str] = field(default_factory=list)
    difference: str = ""


def compare(kernel, container, *, rel_tol: float = FLOAT_TOLERANCE, ignore_keys=()) -> Comparison:
    """Compare two JSON values: exact for ints, strings, bools and None, floats to ``rel_tol``.

    ``ignore_keys`` holds key names (left out at any depth) and dotted paths from the top
    (``stats.elapsed``; list items do not add to a path): timestamps, timings and random
    values differ between two correct runs, and last-digit float noise is not a difference.
    """
    names = {k for k in ignore_keys if "." not in k}
    paths = {k for k in ignore_keys if "." in k}
    ignored: list[str] = []
    differences: list[str] = []  # the first one is reported; the walk goes on for `ignored`
    within = False

    def walk(a, b, shown: str, keypath: str) -> None:
        nonlocal within
        where = shown or "the result"
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                sub_shown = f"{shown}.{key}" if shown else str(key)
                sub_path = f"{keypath}.{key}" if keypath else str(key)
                if key in names or sub_path in paths:
                    if sub_shown not in ignored:
                        ignored.append(sub_shown)
                elif key not in b:
                    differences.append(f"{sub_shown}: only in the kernel's result")
                elif key not in a:
                    differences.append(f"{sub_shown}: only in the container's result")
                else:
                    walk(a[key], b[key], sub_shown, sub_path)
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                differences.append(
                    f"{where}: {len(a)} items in the kernel, {len(b)} in the container"
                )
                return
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{shown}[{i}]", keypath)
            return
        numbers = (int, float)
        if (
            (isinstance(a, float) or isinstance(b, float))
            and isinstance(a, numbers)
            and isinstance(b, numbers)
            and not isinstance(a, bool)
            and not isinstance(b, bool)
        ):
            if a == b or (math.isnan(a) and math.isnan(b)):
                return
            if math.isclose(a, b, rel_tol=rel_tol):
                within = True
                return
            scale = max(abs(a), abs(b))
            relative = abs(a - b) / scale if scale and math.isfinite(scale) else math.inf
            differences.append(
                f"{where}: {a!r} in the kernel, {b!r} in the container (relative difference "
                f"{relative:.1e} > tolerance {rel_tol:g})"
            )
        elif type(a) is not type(b) or a != b:
            differences.append(f"{where}: {_short(a)} in the kernel, {_short(b)} in the container")

    walk(kernel, container, "", "")
    if differences:
        return Comparison("different", ignored, differences[0])
    return Comparison("equal within tolerance" if within else "equal", ignored, "")


def _short(value) -> str:
    text = _pretty(value)
    return text if len(text) <= 80 else text[:79] + "…"


@dataclass
class TestReport:
    """Container and kernel results for one input, and whether they agree.

    The displays shorten long results and logs; the whole values stay in
    ``report.container.result``, ``report.container.logs`` and ``report.kernel.result``.
    """

    __test__ = False  # not a pytest test class

    name: str
    args: dict
    container: ContainerRun
    kernel: KernelRun | None
    #: Relative tolerance of float comparisons (c.FaaSWorkspace.float_tolerance).
    tolerance: float = FLOAT_TOLERANCE
    #: Result keys the verdict leaves out (the bundle's ``ignore_keys``).
    ignore_keys: list[str] = field(default_factory=list)
    #: The size limits the function server will enforce, in bytes: {"payload": …, "result": …}.
    limits: dict | None = None

    @cached_property
    def comparison(self) -> Comparison | None:
        """The kernel-vs-container comparison; None when there is nothing to compare."""
        if not self.container.ok and self.container.status != "application error":
            return None
        if self.kernel is None or not self.kernel.ok:
            return None
        kernel_json, problem = _as_json(self.kernel.result)
        if problem:
            return Comparison("different", [], f"the kernel's result is not JSON: {problem}")
        return compare(
            kernel_json,
            self.container.result,
            rel_tol=self.tolerance,
            ignore_keys=self.ignore_keys,
        )

    @property
    def verdict(self) -> str:
        """ "equal", "equal within tolerance", "different", "container failed",
        "container only" or "kernel failed"."""
        if not self.container.ok and self.container.status != "application error":
            return "container failed"
        if self.kernel is None:
            return "container only"
        if not self.kernel.ok:
            return "kernel failed"
        return self.comparison.verdict

    @property
    def ok(self) -> bool:
        return self.verdict in ("equal", "equal within tolerance", "container only")

    def to_json(self) -> dict:
        """The report as the sidebar's faces hand it on: verdict, both runs, the difference."""
        c, k = self.container, self.kernel
        kernel = None
        if k is not None:
            result, problem = _as_json(k.result) if k.ok else (None, "")
            kernel = {
                "ok": k.ok,
                "result": result if not problem else repr(k.result),
                "error": k.error or (f"not JSON-serialisable: {problem}" if problem else ""),
                "seconds": k.seconds,
            }
        compared = self.comparison
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "limits": self.limits,
            "container": {
                "status": c.status,
                "result": c.result,
                "logs": c.logs,
                "seconds": c.seconds,
                "peak_memory_bytes": c.peak_memory_bytes,
            },
            "kernel": kernel,
            "differences": [compared.difference] if compared and compared.difference else [],
        }

    def _rows(self) -> list[tuple[str, str, str]]:
        c, k = self.container, self.kernel
        peak = f"{c.peak_memory_bytes / 2**20:.1f} MiB" if c.peak_memory_bytes else "n/a"
        kernel_result = ""
        if k is not None:
            kernel_result = (
                shorten(_pretty(k.result), "report.kernel.result")
                if k.ok
                else shorten(k.error, "report.kernel.error")
            )
        if k is not None and k.ok and _as_json(k.result)[1]:
            kernel_result += f"\n(not JSON-serialisable: {_as_json(k.result)[1]})"
        rows = [
            ("status", c.status, "" if k is None else ("success" if k.ok else "error")),
            ("result", shorten(_pretty(c.result), "report.container.result"), kernel_result),
            (
                "wall time",
                f"{c.seconds * 1000:.1f} ms",
                "" if k is None else f"{k.seconds * 1000:.1f} ms",
            ),
            ("peak memory", peak, ""),
        ]
        compared = self.comparison
        if compared is not None:
            notes = [f"floats to a relative {self.tolerance:g}"]
            if compared.ignored:
                notes.append(f"ignored keys: {', '.join(compared.ignored[:20])}")
                if len(compared.ignored) > 20:
                    notes[-1] += f" and {len(compared.ignored) - 20} more"
            elif self.ignore_keys:
                notes.append(f"ignored keys: none found of {', '.join(self.ignore_keys)}")
            if compared.difference:
                notes.append(f"first difference at {compared.difference}")
            rows.append(("compared", "; ".join(notes), ""))
        if self.limits:
            rows.append(("limits", self._limits_text(), ""))
        return rows

    def _limits_text(self) -> str:
        """The sizes the server will check, stated before a deploy rather than found after."""
        payload = self.limits.get("payload")
        result = self.limits.get("result")
        sizes = [f"input {_size(self.args)} B of {_limit(payload)}"]
        if self.container.ok:
            sizes.append(f"result {_size(self.container.result)} B of {_limit(result)}")
        else:
            sizes.append(f"results up to {_limit(result)}")
        return (
            ", ".join(sizes) + " (what the function server enforces: c.FaaSWorkspace."
            "max_payload_bytes and max_result_bytes, c.FunctionServer.max_payload_bytes)"
        )

    def __str__(self) -> str:
        args = shorten(json.dumps(self.args), "report.args", 200)
        lines = [f"{self.name}({args}): {self.verdict}"]
        for label, container, kernel in self._rows():
            if label in _NOTES:
                lines.append(f"  {label:<12} {container}")
                continue
            lines.append(f"  {label:<12} container: {container}")
            if kernel:
                lines.append(f"  {'':<12} kernel:    {kernel}")
        lines.append("  container logs:" if self.container.logs else "  container logs: (none)")
        lines.extend(f"    {line}" for line in tail(self.container.logs, "report.container.logs"))
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython's text/plain form (the dataclass repr would hide the verdict in noise).
        printer.text(str(self))

    def _repr_html_(self) -> str:
        colour = "var(--jp-success-color1, green)" if self.ok else "var(--jp-error-color1, red)"
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            + (
                f"<td colspan='2' style='text-align:left'>{html.escape(container)}</td></tr>"
                if label in _NOTES
                else f"<td style='text-align:left'><pre>{html.escape(container)}</pre></td>"
                f"<td style='text-align:left'><pre>{html.escape(kernel)}</pre></td></tr>"
            )
            for label, container, kernel in self._rows()
        )
        logs = tail(self.container.logs, "report.container.logs")
        logs_html = html.escape("\n".join(logs)) or "(none)"
        return (
            f"<div><b>{html.escape(self.name)}</b>: "
            f"<b style='color:{colour}'>{html.escape(self.verdict)}</b>"
            "<table><tr><th></th><th style='text-align:left'>container</th>"
            f"<th style='text-align:left'>kernel</th></tr>{rows}</table>"
            f"<details><summary>container logs</summary><pre>{logs_html}</pre></details></div>"
        )


#: Report rows about the whole test rather than one side of it.
_NOTES = ("compared", "limits")


def _size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _limit(limit) -> str:
    return "no limit" if not limit else f"{limit} B"


def _pretty(value) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)
