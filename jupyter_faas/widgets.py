"""Notebook widgets: progress displays and the invoke form, each with a plain-text twin.

Each display is shown with a MIME bundle holding both the widget view and a
``text/plain`` form of it. JupyterLab renders the widget; a notebook run
headless (nbclient, nbconvert) keeps the text, so nothing is lost where
widgets are not rendered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from contextlib import contextmanager

from IPython.display import display

from .builders.interface import ProgressEvent
from .deployers import Accepted, ActivationRecord
from .display import Activation
from .errors import FaaSError

_TEXT_REFRESH_S = 1.0
#: A push event about one layer, as DockerBuilder.push words it ("3f4e5d6c7b8a Pushing").
_LAYER_EVENT = re.compile(r"\A[0-9a-f]{12} (?P<state>.+)\Z")


class _Transcript:
    """Progress events as text lines: one summary for a push's layers, no line twice in a row.

    A push reports each layer's states (Preparing, Waiting, Pushing, Pushed); as text that is
    dozens of lines saying little, so they are counted and summed up in one line when the
    push ends (or fails).
    """

    def __init__(self):
        self.layers: dict[str, str] = {}
        self.last = ""

    def lines(self, event: ProgressEvent) -> list[str]:
        step, message = event.get("step", ""), event.get("message", "")
        if not message:
            return []
        out = []
        layer = _LAYER_EVENT.match(message) if step == "push" else None
        if layer:
            self.layers[message.split(" ", 1)[0]] = layer["state"]
            return []
        if step != "push" or not message.startswith("Pushing "):
            out.extend(self.layer_summary())
        line = f"[{step}] {message}"
        if line != self.last:
            out.append(line)
            self.last = line
        return out

    def layer_summary(self) -> list[str]:
        """One line on the layers of the push so far (then forgotten), or none."""
        if not self.layers:
            return []
        counts: dict[str, int] = {}
        for state in self.layers.values():
            counts[state] = counts.get(state, 0) + 1
        parts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
        total = len(self.layers)
        self.layers = {}
        return [f"[push] {total} layer{'s' if total != 1 else ''}: {parts}"]


class _Progress:
    """What both displays share: closing with a failure when the operation raises."""

    def finish(self, ok: bool, summary: str) -> None:
        raise NotImplementedError

    @contextmanager
    def failing_as(self, summary: str):
        """Finish with ``summary`` as a failure if the block raises, then re-raise."""
        try:
            yield self
        except Exception:
            self.finish(False, summary)
            raise


class ProgressDisplay(_Progress):
    """Shows progress events of one operation (build, test, push, deploy) as they arrive."""

    def __init__(self, title: str, max_log_lines: int = 200):
        import ipywidgets as widgets

        self.title = title
        self.max_log_lines = max_log_lines
        self.lines: list[str] = []
        self.label = widgets.HTML(value=f"<b>{title}</b>")
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info")
        self.log = widgets.Textarea(
            value="", disabled=True, layout=widgets.Layout(width="100%", height="10em")
        )
        self.box = widgets.VBox([self.label, self.bar, self.log])
        self._last_text = 0.0
        self._transcript = _Transcript()
        self.handle = display(self._bundle(), raw=True, display_id=True)

    def __call__(self, event: ProgressEvent) -> None:
        message = event.get("message", "")
        if message:
            # The widget's label follows every event; the log and transcript stay compact.
            self.label.value = f"<b>{self.title}</b>: {event.get('step', '')} {_short(message)}"
            lines = self._transcript.lines(event)
            if lines:
                self.lines.extend(lines)
                self.log.value = "\n".join(self.lines[-self.max_log_lines :])
        fraction = event.get("progress")
        if fraction is not None:
            self.bar.value = float(fraction)
        if time.monotonic() - self._last_text > _TEXT_REFRESH_S:
            self._refresh()

    def finish(self, ok: bool, summary: str) -> None:
        """Show the outcome and store the full transcript as the plain-text form."""
        self.bar.value = 1.0
        self.bar.bar_style = "success" if ok else "danger"
        self.label.value = f"<b>{self.title}</b>: {summary}"
        self.lines.extend(self._transcript.layer_summary())
        self.lines.append(summary)
        self.log.value = "\n".join(self.lines[-self.max_log_lines :])
        self._refresh()

    def _refresh(self) -> None:
        self._last_text = time.monotonic()
        self.handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict:
        text = "\n".join([self.title, *self.lines[-self.max_log_lines :]])
        bundle = {"text/plain": text}
        bundle.update(self.box._repr_mimebundle_() or {})
        bundle["text/plain"] = text
        return bundle


class InvokeForm:
    """A JSON input checked as you type, an Invoke button, and the activation it produced.

    Args:
        name: The deployed function.
        invoke: Called with the parsed input; returns the ActivationRecord (or
            ``Accepted`` when the server's wait ran out).
        initial: The input shown at first, e.g. the bundle's test input.
        explain: Called with a failed record; returns what went wrong on the cell's lines
            (``FaaSWorkspace.explain``), shown first.
    """

    def __init__(
        self,
        name: str,
        invoke: Callable[[dict], ActivationRecord | Accepted],
        initial: str = "{}",
        explain: Callable[[ActivationRecord], dict | None] | None = None,
    ):
        import ipywidgets as widgets

        self.name = name
        self._invoke = invoke
        self._explain = explain
        self.input = widgets.Textarea(
            value=initial,
            placeholder='{"threshold": 3.0}',
            description="Input",
            layout=widgets.Layout(width="100%", height="6em"),
        )
        self.button = widgets.Button(
            description="Invoke", button_style="primary", tooltip=f"Invoke {name}"
        )
        self.status = widgets.HTML()
        self.result = widgets.HTML()
        self.box = widgets.VBox(
            [
                widgets.HTML(f"<b>Invoke {name}</b>"),
                self.input,
                self.button,
                self.status,
                self.result,
            ]
        )
        self.input.observe(lambda _: self.check(), "value")
        self.button.on_click(lambda _: self.submit())
        self.check()

    def check(self) -> dict | None:
        """The input as a JSON object, or None (with the reason shown and Invoke disabled)."""
        try:
            # An empty input is the empty object, as for %faas invoke NAME.
            value = json.loads(self.input.value.strip() or "{}")
        except ValueError as err:
            return self._refuse(
                f"Not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})."
            )
        if not isinstance(value, dict):
            return self._refuse(f"The input must be a JSON object, not {type(value).__name__}.")
        self.button.disabled = False
        self.status.value = ""
        return value

    def submit(self) -> ActivationRecord | Accepted | None:
        """Invoke with the current input and show the outcome; returns the record, if any."""
        value = self.check()
        if value is None:
            return None
        self.button.disabled = True
        self.status.value = "Invoking…"
        try:
            record = self._invoke(value)
        except FaaSError as err:
            self.status.value = _error_html(str(err))
            return None
        finally:
            self.button.disabled = False
        if isinstance(record, Accepted):
            self.status.value = f"Accepted as activation {record.activation_id}; see %faas logs ID."
        else:
            self.status.value = ""
            error = self._explain(record) if self._explain is not None else None
            self.result.value = Activation(record, error)._repr_html_()
        return record

    def _refuse(self, reason: str) -> None:
        self.button.disabled = True
        self.status.value = _error_html(reason)
        return None

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = dict(self.box._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = (
            f"Invoke form for {self.name} (shown where widgets are rendered); "
            f"elsewhere use: %faas invoke {self.name} '{self.input.value}'"
        )
        return bundle


def _error_html(text: str) -> str:
    import html

    return f"<span style='color: var(--jp-error-color1, red)'>{html.escape(text)}</span>"


class TextProgress(_Progress):
    """Plain progress lines for the command line."""

    def __init__(self, stream=None):
        import sys

        self.stream = stream or sys.stderr
        self._transcript = _Transcript()

    def __call__(self, event: ProgressEvent) -> None:
        for line in self._transcript.lines(event):
            print(line, file=self.stream, flush=True)

    def finish(self, ok: bool, summary: str) -> None:
        for line in [*self._transcript.layer_summary(), summary]:
            print(line, file=self.stream, flush=True)


def _short(message: str, limit: int = 80) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
