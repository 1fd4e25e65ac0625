"""Fan-out: one deployed function over many chunks, as non-blocking invocations.

A run of detector frames is processed as chunks (frame ranges passed by reference), each an
activation of the same function. ``fan_out`` submits each chunk non-blocking (the server
answers 202 with an activation id, recorded at once so a failure can name it), keeps at most
``concurrency`` chunks in flight (from submission to their record), and fetches each record
with few polls: the first when chunks already finished say it is likely done (the lower
quartile of their wait + duration, as the server measured them), then backing off. It retries
a failed chunk once and returns the results in input order with every activation it made and
the polls each chunk cost; a chunk that failed every attempt is reported with its activation
ids (``FanOutFailed``), the other chunks' results kept. ``run_in_process`` runs the same
chunks through the Python function in the kernel, so both rates can be compared.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .deployers import ActivationRecord, FaaSDeployer
from .errors import BadRequest, FaaSError, NotFound, ServerError

#: A chunk's first poll comes when this share of the chunks already finished would have
#: (their wait + duration, as the server's records say): early enough for the quicker ones.
FIRST_POLL_QUANTILE = 0.25
#: Later polls come after this share of the chunk's age (at least ``POLL_MIN_S``): a chunk
#: seen done at most ~4 % after it ended, in a few polls (ages grow by 4 % per poll).
POLL_SHARE = 0.04
#: Before any chunk has finished there is no duration to go by: polls after this share of
#: the age (the first wave, a cold start among them, costs ~20-30 polls per chunk).
POLL_SHARE_BLIND = 0.1
POLL_MIN_S = 0.05
#: Poll errors other than 404 (still running) in a row before an attempt counts as failed.
POLL_ERRORS = 5
#: Seconds between two plain-text progress lines.
TEXT_PROGRESS_S = 2.0


class FanOutFailed(FaaSError):
    """Some chunks failed every attempt; ``result`` holds them and every other chunk's result."""

    status = 502
    reason = "fan-out-failed"

    def __init__(self, result: FanOutResult):
        failures = result.failures
        listed = "; ".join(
            f"chunk {f.index} ({', '.join(f.activation_ids) or 'no activation'}): {f.error}"
            for f in failures[:10]
        )
        more = f"; and {len(failures) - 10} more" if len(failures) > 10 else ""
        super().__init__(
            f"{len(failures)} of {len(result.results)} chunks of {result.name} failed "
            f"after {result.attempts} attempt{'s' if result.attempts != 1 else ''}: {listed}{more}.",
            hint="err.result.results keeps the other chunks' results in input order; "
            "%faas logs ID shows an activation's logs.",
        )
        self.result = result


@dataclass
class ChunkFailure:
    """A chunk that failed every attempt: its position, input, activations and last error."""

    index: int
    params: dict
    activation_ids: list[str]
    status: str
    error: str


@dataclass
class FanOutResult:
    """The outcome of a fan-out.

    Attributes:
        name: The function.
        results: One per chunk, in input order: the function's result, or None if it failed.
        records: Per chunk, the record of each attempt (an attempt that never got one, e.g.
            refused by the server, has none).
        failures: The chunks that failed every attempt.
        seconds: Wall time from the first invocation to the last record.
        concurrency: The bound on chunks in flight (from submission to their record).
        attempts: Attempts allowed per chunk (1 + retries).
        polls: Per chunk, the record look-ups its attempts took (those that found it
            still running, and the one that found its record).
        late_ms: Per chunk, how long after its activations ended (the server's start +
            duration) their records were fetched, summed over attempts: the lane time the
            polling cost. Compares this machine's clock with the server's, so with a
            remote server it includes their difference.
    """

    name: str
    results: list
    records: list[list[ActivationRecord]]
    failures: list[ChunkFailure]
    seconds: float
    concurrency: int
    attempts: int
    polls: list[int] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def polls_per_chunk(self) -> float:
        """The mean of ``polls``: what fetching the results cost, per chunk."""
        return sum(self.polls) / len(self.polls) if self.polls else 0.0

    @property
    def activations(self) -> list[ActivationRecord]:
        """Every activation made, in the order of the chunks and their attempts."""
        return [record for attempts in self.records for record in attempts]

    def timeline(self) -> list[dict]:
        """One row per activation for a picture: chunk, attempt, start and end (epoch ms)."""
        rows = []
        for index, attempts in enumerate(self.records):
            for attempt, record in enumerate(attempts, 1):
                start = record.start_ms
                end = start + record.duration_ms if start and record.duration_ms else start
                rows.append(
                    {
                        "chunk": index,
                        "attempt": attempt,
                        "activation_id": record.activation_id,
                        "status": record.status,
                        "cold": record.cold,
                        "start_ms": start,
                        "end_ms": end,
                    }
                )
        return rows


@dataclass
class InProcessRun:
    """The same chunks run through the Python function here: results in order, wall time."""

    results: list
    seconds: float
    processes: int


@dataclass
class _Flight:
    """One attempt in flight: submitted, its record not yet seen."""

    index: int
    number: int
    activation_id: str
    submitted: float
    last: float
    due: float = 0.0
    errors: int = 0


@dataclass
class _Chunks:
    params: list[dict]
    results: list = field(default_factory=list)
    records: list[list[ActivationRecord]] = field(default_factory=list)
    ids: list[list[str]] = field(default_factory=list)
    polls: list[int] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    #: Wait + duration (s) of every attempt that ended with a record, for the poll timing.
    took: list[float] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.params)
        self.results = [None] * n
        self.records = [[] for _ in range(n)]
        self.ids = [[] for _ in range(n)]
        self.polls = [0] * n
        self.late_ms = [0.0] * n

    def first_poll_after(self) -> float | None:
        """Seconds after submission a chunk is first looked up (None: nothing finished yet)."""
        if not self.took:
            return None
        ordered = sorted(self.took)
        return ordered[int(FIRST_POLL_QUANTILE * (len(ordered) - 1))]


def fan_out(
    target,
    name: str,
    chunks: Iterable[dict],
    *,
    concurrency: int = 4,
    retries: int = 1,
    timeout_s: float = 600.0,
    progress: str = "auto",
    check: bool = True,
) -> FanOutResult:
    """Run deployed function ``name`` once per chunk, at most ``concurrency`` at a time.

    Args:
        target: A ``FaaSWorkspace`` (its deployer, and its input-size check) or a
            ``FaaSDeployer``.
        name: The deployed function.
        chunks: One input dict per activation, e.g. ``{"start": 0, "stop": 25, …}``.
        concurrency: Activations in flight at most (1 or more).
        retries: Further attempts of a chunk whose activation failed (0: none).
        timeout_s: Seconds an attempt may go without a record before it counts as failed
            (the function's own time limit normally ends it first, with a record).
        progress: "widgets", "text", "none" or "auto" (widgets in a kernel, else text).
        check: Raise ``FanOutFailed`` when a chunk failed every attempt.

    Returns:
        A ``FanOutResult``: results in input order and the records of every activation.

    Raises:
        BadRequest: a chunk is not a dict, ``concurrency`` < 1 or ``retries`` < 0.
        NotFound: ``name`` is not deployed.
        FanOutFailed: (with ``check``) a chunk failed every attempt; ``err.result`` keeps all.
    """
    deployer = getattr(target, "deployer", target)
    if not isinstance(deployer, FaaSDeployer):
        raise BadRequest(
            f"fan_out needs a FaaSWorkspace or a FaaSDeployer, not {type(target).__name__}.",
            hint="Pass current_workspace() in a notebook with %load_ext jupyter_faas.",
        )
    params = _checked_chunks(chunks, name)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise BadRequest(
            f"concurrency={concurrency!r}: it must be a whole number of activations, 1 or more.",
            hint="E.g. concurrency=2 on a 2-core function server.",
        )
    if not isinstance(retries, int) or retries < 0:
        raise BadRequest(f"retries={retries!r}: it must be 0 or more (1 retries a chunk once).")
    check_payload = getattr(target, "check_payload", None)  # a workspace's input-size limit
    if check_payload is not None:
        for index, chunk in enumerate(params):
            check_payload(chunk, f"Chunk {index} of the fan-out of {name}")
    try:
        deployer.function(name)
    except ServerError as err:
        if err.status != 404:
            raise
        raise NotFound(
            f"There is no function {name!r} on {deployer.location}, so nothing was invoked.",
            hint=f"Deploy it first (%faas deploy {name}); %faas list shows what is deployed.",
        ) from None
    state = _Chunks(params)
    shown = _progress(progress, f"Fan-out of {name}: {len(params)} chunks", len(params))
    failures: dict[int, ChunkFailure] = {}
    queue: deque[tuple[int, int]] = deque((i, 1) for i in range(len(params)))
    flights: list[_Flight] = []
    began = time.monotonic()

    def failed(index: int, number: int, status: str, error: str) -> None:
        if number <= retries:
            queue.appendleft((index, number + 1))
            shown.note(f"chunk {index} failed ({status}: {error}); retrying")
        else:
            ids = state.ids[index]
            failures[index] = ChunkFailure(index, params[index], list(ids), status, error)
            shown.done()
            shown.note(f"chunk {index} failed: {error} ({', '.join(ids) or 'no activation'})")

    def ended(flight: _Flight | None, index: int, number: int, record: ActivationRecord) -> None:
        if flight is not None:
            flights.remove(flight)
            if record.start_ms and record.duration_ms is not None:
                late = time.time() * 1000 - record.start_ms - record.duration_ms
                state.late_ms[index] += max(0.0, late)
        if record.duration_ms is not None:
            state.took.append(((record.wait_ms or 0) + record.duration_ms) / 1000)
            for other in flights:
                _schedule(other, state.first_poll_after())
        state.records[index].append(record)
        if record.ok:
            state.results[index] = record.result
            shown.done()
        else:
            error = record.result.get("error") if isinstance(record.result, dict) else None
            failed(index, number, record.status, str(error or record.result))

    with shown:
        while queue or flights:
            while queue and len(flights) < concurrency:
                index, number = queue.popleft()
                try:
                    answer = deployer.invoke(name, params[index], blocking=False)
                except ServerError as err:
                    failed(index, number, "refused", str(err))
                    continue
                if not answer.activation_id:
                    failed(index, number, "refused", "the server answered no activation id")
                    continue
                state.ids[index].append(answer.activation_id)
                if isinstance(answer, ActivationRecord) and answer.status != "running":
                    ended(None, index, number, answer)  # a deployer that answered at once
                    continue
                now = time.monotonic()
                flight = _Flight(index, number, answer.activation_id, now, now)
                _schedule(flight, state.first_poll_after())
                flights.append(flight)
            shown.update(len(flights), len(failures))
            if not flights:
                continue
            flight = min(flights, key=lambda f: f.due)
            wait_s = flight.due - time.monotonic()
            if wait_s > 0:
                time.sleep(min(wait_s, TEXT_PROGRESS_S))
                continue
            outcome = _poll(deployer, flight, timeout_s)
            state.polls[flight.index] += 1
            if isinstance(outcome, ActivationRecord):
                ended(flight, flight.index, flight.number, outcome)
            elif outcome:
                flights.remove(flight)
                failed(flight.index, flight.number, *outcome)
            else:
                _schedule(flight, state.first_poll_after())
        result = FanOutResult(
            name=name,
            results=state.results,
            records=state.records,
            failures=[failures[i] for i in sorted(failures)],
            seconds=time.monotonic() - began,
            concurrency=concurrency,
            attempts=retries + 1,
            polls=state.polls,
            late_ms=state.late_ms,
        )
        shown.finish(result)
    if check and result.failures:
        raise FanOutFailed(result)
    return result


def _schedule(flight: _Flight, first_after: float | None) -> None:
    """Set when ``flight`` is looked up next: when chunks like it were done, then backing off."""
    if first_after is not None and flight.submitted + first_after > flight.last:
        flight.due = flight.submitted + first_after
        return
    share = POLL_SHARE_BLIND if first_after is None else POLL_SHARE
    flight.due = flight.last + max(POLL_MIN_S, share * (flight.last - flight.submitted))


def _poll(
    deployer: FaaSDeployer, flight: _Flight, timeout_s: float
) -> ActivationRecord | tuple[str, str] | None:
    """Look ``flight``'s record up once: the record, (status, error) if the attempt counts as
    failed without one, or None while it still runs."""
    flight.last = time.monotonic()
    age = flight.last - flight.submitted
    try:
        record = deployer.activation(flight.activation_id)
    except ServerError as err:
        # 404: no record yet, as OpenWhisk answers for a running activation.
        flight.errors = 0 if err.status == 404 else flight.errors + 1
        if flight.errors >= POLL_ERRORS:
            return ("unknown", f"its record cannot be read: {err}")
    else:
        flight.errors = 0
        if record.status != "running":
            return record
    if age > timeout_s:
        return ("timeout", f"no record in {age:.0f} s")
    return None


#: The function and chunks forked workers of ``run_in_process`` inherit (set only meanwhile).
_FORKED: tuple[Callable, list[dict]] | None = None


def run_in_process(
    function: Callable[[dict], object],
    chunks: Iterable[dict],
    *,
    processes: int = 1,
    progress: str = "auto",
) -> InProcessRun:
    """Run ``function`` (e.g. the notebook's ``main``) on each chunk here, for comparison.

    With ``processes`` > 1 the chunks go to that many forked processes of this kernel (the
    same number of cores the function server's fan-out gets), results still in input order.
    An exception of ``function`` propagates, as calling it would.
    """
    params = _checked_chunks(chunks, getattr(function, "__name__", "the function"))
    if not isinstance(processes, int) or processes < 1:
        raise BadRequest(f"processes={processes!r}: it must be 1 or more.")
    shown = _progress(progress, f"In process: {len(params)} chunks", len(params))
    began = time.monotonic()
    results = []
    with shown:
        if processes == 1:
            for chunk in params:
                results.append(function(chunk))
                shown.done()
                shown.update(0, 0)
        else:
            global _FORKED
            # Forked workers inherit the function and chunks: nothing of the notebook is pickled.
            _FORKED = (function, params)
            try:
                with multiprocessing.get_context("fork").Pool(processes) as pool:
                    for value in pool.imap(_call_forked, range(len(params))):
                        results.append(value)
                        shown.done()
                        shown.update(0, 0)
            finally:
                _FORKED = None
        run = InProcessRun(results, time.monotonic() - began, processes)
        shown.finish(None, f"{len(params)} chunks in {run.seconds:.2f} s")
    return run


def _call_forked(index: int):
    function, params = _FORKED
    return function(params[index])


def current_workspace():
    """The workspace of the ``%faas`` magics in this IPython (after ``%load_ext jupyter_faas``)."""
    from IPython import get_ipython

    from .errors import ConfigError

    shell = get_ipython()
    magics = shell.magics_manager.registry.get("FaaSMagics") if shell is not None else None
    if magics is None:
        raise ConfigError(
            "The jupyter_faas magics are not loaded here.",
            hint="Run %load_ext jupyter_faas first.",
        )
    return magics.workspace


def _checked_chunks(chunks: Iterable[dict], name: str) -> list[dict]:
    if isinstance(chunks, (dict, str, bytes)) or not isinstance(chunks, Iterable):
        raise BadRequest(
            f"The chunks of {name} must be an iterable of dicts, not {type(chunks).__name__}.",
            hint='E.g. [{"start": 0, "stop": 25}, {"start": 25, "stop": 50}].',
        )
    params = list(chunks)
    for index, chunk in enumerate(params):
        if not isinstance(chunk, dict):
            raise BadRequest(
                f"Chunk {index} of {name} is {type(chunk).__name__} {chunk!r:.80}, not a dict "
                "(a JSON object); nothing was invoked.",
                hint='Give each chunk as the function\'s input, e.g. {"start": 0, "stop": 25}.',
            )
    return params


def _progress(style: str, title: str, total: int):
    if style not in ("auto", "widgets", "text", "none"):
        raise BadRequest(f"progress={style!r}: use 'auto', 'widgets', 'text' or 'none'.")
    if style == "auto":
        style = "widgets" if _in_kernel() else "text"
    if style == "widgets":
        return _WidgetProgress(title, total)
    return _TextProgress(title, total, quiet=style == "none")


def _in_kernel() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and shell.has_trait("kernel")


class _TextProgress:
    """Compact lines: one every few seconds, each failure or retry, and the outcome."""

    def __init__(self, title: str, total: int, quiet: bool = False):
        self.title, self.total, self.quiet = title, total, quiet
        self.finished = 0
        self._last = 0.0

    def __enter__(self):
        self._say(self.title)
        return self

    def __exit__(self, *exc):
        return False

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def done(self) -> None:
        self.finished += 1

    def note(self, line: str) -> None:
        self._say(f"  {line}")

    def update(self, running: int, failed: int) -> None:
        if time.monotonic() - self._last >= TEXT_PROGRESS_S:
            self._last = time.monotonic()
            self._say(f"  {self.finished}/{self.total} done, {running} running, {failed} failed")

    def finish(self, result: FanOutResult | None, summary: str = "") -> None:
        self._say(f"  {summary or _summary(result)}")


class _WidgetProgress(_TextProgress):
    """An ipywidgets bar with a label, and a plain-text copy for headless runs."""

    def __init__(self, title: str, total: int):
        super().__init__(title, total, quiet=True)
        import ipywidgets as widgets
        from IPython.display import display

        self.notes: list[str] = []
        self.label = widgets.HTML(value=f"<b>{title}</b>")
        self.bar = widgets.IntProgress(value=0, min=0, max=max(total, 1), bar_style="info")
        self.box = widgets.VBox([self.label, self.bar])
        self.handle = display(self._bundle(), raw=True, display_id=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.bar.bar_style = "danger"
            self.handle.update(self._bundle(), raw=True)
        return False

    def note(self, line: str) -> None:
        self.notes.append(line)

    def update(self, running: int, failed: int) -> None:
        self.bar.value = self.finished
        self.label.value = (
            f"<b>{self.title}</b>: {self.finished}/{self.total} done, {running} running, "
            f"{failed} failed"
        )
        if time.monotonic() - self._last >= TEXT_PROGRESS_S:
            self._last = time.monotonic()
            self.handle.update(self._bundle(), raw=True)

    def finish(self, result: FanOutResult | None, summary: str = "") -> None:
        summary = summary or _summary(result)
        self.bar.value = self.total
        self.bar.bar_style = "success" if result is None or result.ok else "danger"
        self.label.value = f"<b>{self.title}</b>: {summary}"
        self.notes.append(summary)
        self.handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict:
        bundle = dict(self.box._repr_mimebundle_() or {})
        bundle["text/plain"] = "\n".join([self.title, *self.notes])
        return bundle


def _summary(result: FanOutResult) -> str:
    made = len(result.activations)
    failed = f", {len(result.failures)} failed" if result.failures else ""
    return (
        f"{len(result.results) - len(result.failures)}/{len(result.results)} chunks done in "
        f"{result.seconds:.2f} s: {made} activations, at most {result.concurrency} at once, "
        f"{result.polls_per_chunk:.1f} polls per chunk{failed}"
    )
