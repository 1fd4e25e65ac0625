"""How activations and function lists look in a notebook (HTML) and a terminal (text)."""

from __future__ import annotations

import html
import json
import time


def _annotation(record: dict, key: str):
    for item in record.get("annotations") or []:
        if item.get("key") == key:
            return item.get("value")
    return None


def _when(ms) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


class Activation:
    """One activation record, shown with its status, result, timing and logs."""

    def __init__(self, record: dict):
        self.record = record

    @property
    def status(self) -> str:
        response = self.record.get("response") or {}
        return response.get("status") or ("success" if response.get("success") else "running")

    def _lines(self) -> list[str]:
        r = self.record
        response = r.get("response") or {}
        start = "cold" if _annotation(r, "initTime") is not None else "warm"
        lines = [
            f"{r.get('name')} {r.get('activationId')}: {self.status}",
            f"  start {_when(r.get('start'))}, duration {r.get('duration', '?')} ms, {start}",
            f"  result {json.dumps(response.get('result'), sort_keys=True)}",
        ]
        logs = r.get("logs") or []
        lines.append("  logs:" if logs else "  logs: (none)")
        lines.extend(f"    {line}" for line in logs)
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        ok = self.status == "success"
        colour = "var(--jp-success-color1, green)" if ok else "var(--jp-error-color1, red)"
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
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)

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


def activation_rows(records: list[dict]) -> list[dict]:
    """Activation list items as table rows (status from statusCode, cold/warm from initTime)."""
    names = {0: "success", 1: "application error", 2: "developer error", 3: "internal error"}
    return [
        {
            "activationId": r.get("activationId"),
            "name": r.get("name"),
            "status": names.get(r.get("statusCode"), "running"),
            "start": r.get("start"),
            "duration": r.get("duration"),
            "start kind": "cold" if _annotation(r, "initTime") is not None else "warm",
        }
        for r in records
    ]
