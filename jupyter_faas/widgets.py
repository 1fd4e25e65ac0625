"""Progress displays for the notebook: an ipywidgets bar and log, with a plain-text twin.

Each display is shown with a MIME bundle holding both the widget view and a
``text/plain`` transcript. JupyterLab renders the widget; a notebook run
headless (nbclient, nbconvert) keeps the transcript, so nothing is lost where
widgets are not rendered.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from IPython.display import display

from .builder import ProgressEvent

_TEXT_REFRESH_S = 1.0


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
        self.handle = display(self._bundle(), raw=True, display_id=True)

    def __call__(self, event: ProgressEvent) -> None:
        message = event.get("message", "")
        if message:
            self.lines.append(f"[{event.get('step', '')}] {message}")
            self.log.value = "\n".join(self.lines[-self.max_log_lines :])
        fraction = event.get("progress")
        if fraction is not None:
            self.bar.value = float(fraction)
        self.label.value = f"<b>{self.title}</b>: {event.get('step', '')} {_short(message)}"
        if time.monotonic() - self._last_text > _TEXT_REFRESH_S:
            self._refresh()

    def finish(self, ok: bool, summary: str) -> None:
        """Show the outcome and store the full transcript as the plain-text form."""
        self.bar.value = 1.0
        self.bar.bar_style = "success" if ok else "danger"
        self.label.value = f"<b>{self.title}</b>: {summary}"
        self.lines.append(summary)
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


class TextProgress(_Progress):
    """Plain progress lines for the command line."""

    def __init__(self, stream=None):
        import sys

        self.stream = stream or sys.stderr

    def __call__(self, event: ProgressEvent) -> None:
        message = event.get("message", "")
        if message:
            print(f"[{event.get('step', '')}] {message}", file=self.stream, flush=True)

    def finish(self, ok: bool, summary: str) -> None:
        print(summary, file=self.stream, flush=True)


def _short(message: str, limit: int = 80) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
