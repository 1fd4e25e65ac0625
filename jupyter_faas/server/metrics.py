"""The function server's ``/metrics``: activations and the pool in Prometheus' text format.

Like OpenFaaS' gateway, the server counts invocations and errors, and keeps histograms of
their durations and of the time they waited for a container, per namespace and action;
cold starts; activations in flight; the pool's sandboxes by state. Every series carries
the invoking namespace, so a caller with a namespace key is shown its own series only
(:meth:`ServerMetrics.exposition`); the operator's token shows all of them.

The counting is a few dictionary updates per activation on the event loop (no thread,
no lock wait); the text is built only when ``/metrics`` is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

#: Upper bounds (seconds) of the duration and wait histograms: from a warm invoke's
#: milliseconds to the largest action timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: The classic text format, which every Prometheus reads (our metric names are all legacy-valid).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: OpenWhisk's names of an activation's ``statusCode`` values.
STATUS = {0: "success", 1: "application_error", 2: "developer_error", 3: "whisk_error"}


def _annotations(record: dict) -> dict:
    return {a["key"]: a["value"] for a in record.get("annotations") or ()}


class ServerMetrics:
    """The server's counters, histograms and gauges, in a registry of their own.

    Args:
        pool_sizes: Called at each read of ``/metrics``: sandboxes of the invoker's
            pool by ``(namespace, state)`` (namespace "" for prewarm ones).
    """

    def __init__(self, pool_sizes: Callable[[], dict[tuple[str, str], int]] = dict):
        self.registry = CollectorRegistry(auto_describe=False)
        labels = ("namespace", "action")
        reg = {"registry": self.registry}
        self.invocations = Counter(
            "faas_invocations",
            "Activations finished, by invoking namespace, action path and OpenWhisk status.",
            (*labels, "status"),
            **reg,
        )
        self.errors = Counter(
            "faas_invocation_errors",
            "Activations that did not succeed (status other than success).",
            (*labels, "status"),
            **reg,
        )
        self.duration = Histogram(
            "faas_invocation_duration_seconds",
            "Run time of activations (the record's duration).",
            labels,
            buckets=BUCKETS,
            **reg,
        )
        self.wait = Histogram(
            "faas_invocation_wait_seconds",
            "Time activations waited between acceptance and start (the record's waitTime).",
            labels,
            buckets=BUCKETS,
            **reg,
        )
        self.cold_starts = Counter(
            "faas_cold_starts",
            "Activations that needed an /init (a new or prewarmed sandbox).",
            labels,
            **reg,
        )
        self.in_flight = Gauge(
            "faas_invocations_in_flight",
            "Activations accepted and not yet recorded.",
            ("namespace",),
            **reg,
        )
        self.registry.register(_PoolCollector(pool_sizes))

    def observe(self, record: dict) -> None:
        """Count a finished activation record (an action's, not a trigger's)."""
        notes = _annotations(record)
        namespace, action = record["namespace"], notes.get("path", record["name"])
        status = STATUS.get(record["response"]["statusCode"], "whisk_error")
        self.invocations.labels(namespace, action, status).inc()
        if status != "success":
            self.errors.labels(namespace, action, status).inc()
        self.duration.labels(namespace, action).observe(record.get("duration", 0) / 1000)
        self.wait.labels(namespace, action).observe(notes.get("waitTime", 0) / 1000)
        if "initTime" in notes:
            self.cold_starts.labels(namespace, action).inc()

    def exposition(self, namespace: str | None) -> bytes:
        """The text format: every series (``namespace`` None) or ``namespace``'s only."""
        if namespace is None:
            return generate_latest(self.registry)
        return generate_latest(_OneNamespace(self.registry, namespace))


class _OneNamespace:
    """The registry's families with only the samples of one namespace."""

    def __init__(self, registry: CollectorRegistry, namespace: str):
        self.registry, self.namespace = registry, namespace

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [
                s for s in family.samples if s.labels.get("namespace") == self.namespace
            ]
            yield kept


class _PoolCollector:
    """The pool's sandboxes by namespace and state, read when ``/metrics`` is."""

    def __init__(self, pool_sizes: Callable[[], dict[tuple[str, str], int]]):
        self.pool_sizes = pool_sizes

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "faas_pool_sandboxes",
            "Containers (or runtime processes) of the invoker's pool, by the namespace they "
            'serve ("" for prewarm ones) and state (prewarm, idle, busy).',
            labels=("namespace", "state"),
        )
        for (namespace, state), count in sorted(self.pool_sizes().items()):
            family.add_metric((namespace, state), count)
        yield family
