"""Failed runs read as the notebook's own errors: log lines for display, tracebacks on the cell.

A function that raised leaves ``{"error": "ValueError: …"}`` as its result and the
runtime's printed traceback in its logs, numbered by ``handler.py`` and led by the
runtime's own frames. ``explain`` turns that into what the kernel would have said:
"your function raised ValueError: …" and the function's frames only, on the cell's
line numbers (``FunctionMetadata.cell_lines``) with the source lines from the bundle.
"""

from __future__ import annotations

import calendar
import os
import re
import time

#: An OpenWhisk log line: RFC 3339 timestamp (padded), stream, message.
_LOG_LINE = re.compile(
    r"\A(?P<date>\d{4}-\d\d-\d\d)T(?P<time>\d\d:\d\d:\d\d)(?P<frac>\.\d+)?Z\s+"
    r"(?P<stream>stdout|stderr): ?(?P<text>.*)\Z",
    re.S,
)
TRACEBACK_HEAD = "Traceback (most recent call last):"
_FRAME = re.compile(r'\A\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)\Z')
#: Python 3.11+ marks the failing expression with a line of ^ and ~.
_MARKS = re.compile(r"\A\s*[~^]+[\s~^]*\Z")
#: ``ExcType: message`` or a bare exception type, as the runtime words an exception.
_RAISED = re.compile(r"\A(?P<type>[A-Za-z_][\w.]*)(?:: (?P<message>.*))?\Z", re.S)
_LOADING = " (raised while loading the action code)"
#: Where the runtime's own files are (in the image, or this package in container-less mode).
_RUNTIME_FILES = ("/faas/", f"{os.sep}jupyter_faas{os.sep}runtime{os.sep}")
_HANDLER_FILES = ("__main__.py", "handler.py")


def log_lines(raw: list[str]) -> list[dict]:
    """Log lines for display: ``{"time": "12:03:04.123", "ms", "stream", "text"}``.

    ``time`` is UTC, cut to milliseconds; lines without an OpenWhisk prefix (a local test
    container's) keep their text with ``time`` and ``stream`` None.
    """
    lines = []
    for line in raw:
        match = _LOG_LINE.match(line)
        if match is None:
            lines.append({"time": None, "ms": None, "stream": None, "text": line})
            continue
        frac = (match["frac"] or ".0")[1:]
        millis = int(frac[:3].ljust(3, "0"))
        stamp = time.strptime(f"{match['date']} {match['time']}", "%Y-%m-%d %H:%M:%S")
        lines.append(
            {
                "time": f"{match['time']}.{millis:03d}",
                "ms": calendar.timegm(stamp) * 1000 + millis,
                "stream": match["stream"],
                "text": match["text"],
            }
        )
    return lines


def explain(status: str, result, raw_logs: list[str], metadata=None, code: str = "") -> dict | None:
    """What went wrong in a run, for people; None when it succeeded.

    Args:
        status: The neutral status ("success", "application error", "developer error", …).
        result: The run's result (``{"error": …}`` when it failed).
        raw_logs: Its log lines as the server or the test container gave them.
        metadata: The bundle's ``FunctionMetadata`` (maps handler.py lines to the cell's),
            or None when the function has no bundle here.
        code: The text of ``handler.py``, for the source lines of its frames.

    Returns:
        ``{"headline", "type", "message", "traceback", "frames"}``; see docs/sidebar-api.md.
    """
    if status in ("success", "running"):
        return None
    error = result.get("error") if isinstance(result, dict) else None
    error = error if isinstance(error, str) else ("" if error is None else str(error))
    # A traceback is printed on stderr; stdout lines may fall between its lines.
    texts = [line["text"] for line in log_lines(raw_logs) if line["stream"] != "stdout"]
    frames = _frames(texts, metadata, code, error.removesuffix(_LOADING))
    kind = message = None
    if status == "application error":
        headline = f"your function returned an error: {error}"
    elif status == "internal error":
        headline = f"the function server failed to run your function: {error}"
    else:
        loading = error.endswith(_LOADING)
        text = error[: -len(_LOADING)] if loading else error
        raised = _RAISED.match(text)
        if raised:
            kind, message = raised["type"], raised["message"] or ""
            verb = "raised" if not loading else "raised, while its code was loading,"
            headline = f"your function {verb} {text}"
        elif "time limit" in error:
            headline = f"your function ran out of time: {error}"
        elif "memory" in error:
            headline = f"your function ran out of memory: {error}"
        else:
            headline = f"your function failed: {error}"
    frames = frames or []
    traceback = ""
    if frames:
        body = []
        for frame in frames:
            body.append(f"  {frame['label']}, line {frame['line']}, in {frame['function']}")
            if frame["text"]:
                body.append(f"    {frame['text'].strip()}")
        tail = f"{kind}: {message}" if kind and message else (kind or error)
        traceback = "\n".join([TRACEBACK_HEAD, *body, tail])
    return {
        "headline": headline,
        "type": kind,
        "message": message if kind else error,
        "traceback": traceback,
        "frames": [{k: f[k] for k in ("where", "line", "function", "text")} for f in frames],
    }


def _frames(texts: list[str], metadata, code: str, error: str = "") -> list[dict] | None:
    """The function's own frames of the last traceback in ``texts``, or None if there is none."""
    starts = [i for i, text in enumerate(texts) if text.strip() == TRACEBACK_HEAD]
    if not starts:
        return None
    frames: list[dict] = []
    handler_dir = None
    parsed = []
    last = error.strip().splitlines()[0] if error.strip() else ""
    for text in texts[starts[-1] + 1 :]:
        match = _FRAME.match(text)
        if match:
            parsed.append({**match.groupdict(), "line": int(match["line"]), "text": ""})
        elif last and text.strip().endswith(last):
            break  # the exception line: the traceback ends here
        elif parsed and not parsed[-1]["text"] and not _MARKS.match(text) and text.strip():
            parsed[-1]["text"] = text.strip()
        elif text.strip() and not _MARKS.match(text) and not last:
            break  # without the error's words, the first other line ends it
        # else: output of the function's that landed inside the traceback (a test
        # container's log mixes stdout into it): skipped
    for frame in parsed:
        if os.path.basename(frame["file"]) in _HANDLER_FILES and not _is_runtime(frame["file"]):
            handler_dir = os.path.dirname(frame["file"])
    code_lines = code.splitlines()
    for frame in parsed:
        path = frame["file"]
        if _is_runtime(path):
            continue
        label, where, line = f'File "{path}"', path, frame["line"]
        if handler_dir is not None and os.path.dirname(path) == handler_dir:
            name = os.path.basename(path)
            if name in _HANDLER_FILES:
                if 0 < line <= len(code_lines):
                    frame["text"] = code_lines[line - 1]
                cell_line = metadata.cell_line(line) if metadata is not None else None
                if cell_line is not None:
                    label, where, line = f"Cell {metadata.name}", "cell", cell_line
                else:
                    label, where = 'File "handler.py" (from an earlier cell)', "handler.py"
            else:
                label, where = f'File "{name}"', name
        frames.append(
            {
                "label": label,
                "where": where,
                "line": line,
                "function": frame["function"],
                "text": frame["text"].rstrip(),
            }
        )
    return frames


def _is_runtime(path: str) -> bool:
    return any(marker in path for marker in _RUNTIME_FILES)
