"""How activations and function lists look in a notebook (HTML) and a terminal (text)."""

from __future__ import annotations

import html
import json
import time

from .deployers import ActivationRecord

#: Characters of one value (a result, an error, a table cell) a display shows; past it, the
#: display says which attribute holds the whole value (a notebook keeps every output, and
#: 8 MB of text make it unusable).
SHOWN_CHARS = 2000
#: Log lines a display shows: the last ones, with a note saying where the others are.
SHOWN_LOG_LINES = 50


def shorten(text: str, where: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much is left out and ``where`` it is."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit:,} more characters; the whole value: {where})"


def tail(lines: list[str], where: str, limit: int = SHOWN_LOG_LINES) -> list[str]:
    """The last ``limit`` of ``lines`` (each shortened), after a line saying what was left out."""
    shown = [shorten(line, where) for line in lines[-limit:]] if limit else []
    left = len(lines) - len(shown)
    return ([f"… {left:,} earlier lines left out; all are in {where}"] if left else []) + shown


def short_times(logs: list[str]) -> list[str]:
    """Log lines with the time of day (12:03:04.123) instead of a full ISO timestamp."""
    from .failure import log_lines

    return [
        f"{line['time']} {line['stream']}: {line['text']}" if line["time"] else line["text"]
        for line in log_lines(logs)
    ]


def _when(ms) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


class Activation:
    """One activation, shown with its status, result, timing and logs.

    A failed one leads with what went wrong (``error``, from ``FaaSWorkspace.explain``):
    "your function raised ValueError: …" and the traceback on the cell's lines.
    """

    def __init__(self, record: ActivationRecord, error: dict | None = None):
        self.record = record
        self.error = error

    def _lines(self) -> list[str]:
        r = self.record
        result = shorten(json.dumps(r.result, sort_keys=True), ".record.result")
        who = r.started_by()["label"]
        head = f"{r.name} {r.activation_id}: {r.status}"
        if self.error:
            head = f"{r.name}: {self.error['headline']}"
        lines = [
            head,
            f"  activation {r.activation_id}, version {r.version or '?'}, started by {who}",
            f"  start {_when(r.start_ms)}, {timing(r)}",
        ]
        if self.error and self.error["traceback"]:
            lines.extend(f"  {line}" for line in self.error["traceback"].splitlines())
        else:
            lines.append(f"  result {result}")
        lines.append("  logs:" if r.logs else "  logs: (none)")
        lines.extend(f"    {line}" for line in tail(short_times(r.logs), ".record.logs"))
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        colour = (
            "var(--jp-success-color1, green)" if self.record.ok else "var(--jp-error-color1, red)"
        )
        head, *rest = self._lines()
        return (
            f"<div><b style='color:{colour}'>{html.escape(head)}</b>"
            f"<pre>{html.escape(chr(10).join(rest))}</pre></div>"
        )

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


class Table:
    """A small table of dicts with chosen columns."""

    def __init__(self, rows: list[dict], columns: list[str], empty: str = "(none)"):
        self.rows, self.columns, self.empty = rows, columns, empty

    def _cells(self, row: dict) -> list[str]:
        cells = []
        for column in self.columns:
            value = row.get(column)
            if column in ("start", "updated") and isinstance(value, int):
                value = _when(value)
            cells.append("" if value is None else shorten(str(value), ".rows of this Table", 200))
        return cells

    def __str__(self) -> str:
        if not self.rows:
            return self.empty
        table = [self.columns] + [self._cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.columns))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        )

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<p>{html.escape(self.empty)}</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>"
            for r in self.rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


#: The columns of an activation table.
ACTIVATION_COLUMNS = [
    "activationId",
    "name",
    "status",
    "start",
    "wait ms",
    "init ms",
    "duration ms",
    "start kind",
    "version",
    "started by",
]


def activation_rows(records: list[ActivationRecord]) -> list[dict]:
    """Activations as table rows for ``Table(rows, ACTIVATION_COLUMNS)``."""
    return [
        {
            "activationId": r.activation_id,
            "name": r.name,
            "status": r.status,
            "start": r.start_ms,
            "wait ms": r.wait_ms,
            "init ms": r.init_ms,
            "duration ms": r.duration_ms,
            "start kind": "cold" if r.cold else "warm",
            "version": r.version,
            "started by": r.started_by()["label"],
        }
        for r in records
    ]


def timing(r: ActivationRecord) -> str:
    """Wait, init and run time of an activation: a cold start's cost is in wait and init."""
    return (
        f"wait {_or(r.wait_ms)} ms, init {_or(r.init_ms) if r.cold else '0'} ms, "
        f"duration {_or(r.duration_ms)} ms, {'cold' if r.cold else 'warm'}"
    )


def _or(value) -> str:
    return "?" if value is None else str(value)
