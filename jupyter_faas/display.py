"""How activations and function lists look in a notebook (HTML) and a terminal (text)."""

from __future__ import annotations

import html
import json
import time

from .deployers import ActivationRecord


def _when(ms) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


class Activation:
    """One activation, shown with its status, result, timing and logs."""

    def __init__(self, record: ActivationRecord):
        self.record = record

    def _lines(self) -> list[str]:
        r = self.record
        lines = [
            f"{r.name} {r.activation_id}: {r.status}",
            f"  start {_when(r.start_ms)}, duration {_or(r.duration_ms)} ms, "
            f"{'cold' if r.cold else 'warm'}",
            f"  result {json.dumps(r.result, sort_keys=True)}",
        ]
        lines.append("  logs:" if r.logs else "  logs: (none)")
        lines.extend(f"    {line}" for line in r.logs)
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
            cells.append("" if value is None else str(value))
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
ACTIVATION_COLUMNS = ["activationId", "name", "status", "start", "duration", "start kind"]


def activation_rows(records: list[ActivationRecord]) -> list[dict]:
    """Activations as table rows for ``Table(rows, ACTIVATION_COLUMNS)``."""
    return [
        {
            "activationId": r.activation_id,
            "name": r.name,
            "status": r.status,
            "start": r.start_ms,
            "duration": r.duration_ms,
            "start kind": "cold" if r.cold else "warm",
        }
        for r in records
    ]


def _or(value) -> str:
    return "?" if value is None else str(value)
