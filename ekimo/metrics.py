"""GET /metrics: Prometheus' text format, open like /health, absent with METRICS=false.

Two kinds of figures:
- the HTTP requests this process answered: a counter by route template, method and status and a
  latency histogram by route template and method, counted at the edge of the app (every answer:
  refused credentials, unknown paths and errors included);
- figures read at scrape time from the database (the catalog, imports, sync runs) and from the
  queue, so that every API process reports the same numbers and a restart loses none. Each
  domain contributes a `Figures` function (the assembly, `ekimo.entry.app`, passes them in); what
  they read is kept `FIGURES_TTL_SECONDS` per process, so frequent scrapes of many replicas cost
  the database one read of each every few seconds.

`ekimo serve --workers N` runs N processes: each counts its own requests, and a scrape reaches
one of them. With PROMETHEUS_MULTIPROC_DIR set (to a directory the processes share, empty at
start), prometheus-client keeps the counts in files there and /metrics sums every process's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.response import Response
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ekimo.container import Container

logger = logging.getLogger(__name__)

PATH = "/metrics"
FIGURES_TTL_SECONDS = 5.0
READ_TIMEOUT_S = 3.0
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The route label of a request that matched no route (a scan of random paths is one series).
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUEUE_STATES = ("queued", "active", "incomplete")


@dataclass(frozen=True, slots=True)
class Figure:
    """One metric family as read now: `values` maps label values (in the order of `labels`) to
    a number. A `counter` is named with its `_total` suffix, as Prometheus shows it."""

    name: str
    documentation: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...] = ()
    values: Mapping[tuple[str, ...], float] = field(default_factory=dict[tuple[str, ...], float])

    def family(self) -> Metric:
        family: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        else:
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for label_values, value in sorted(self.values.items()):
            family.add_metric(list(label_values), value)
        return family


class Figures(Protocol):
    """A domain's figures, read from the database (a query or two, cheap on a large catalog)."""

    async def __call__(self, container: Container, /) -> Sequence[Figure]: ...


async def queue_figures(container: Container) -> Sequence[Figure]:
    """The SAQ queue's jobs by state (the queue is the container's: shared by every process)."""
    counts = {state: await container.queue.count(state) for state in QUEUE_STATES}
    return [
        Figure(
            "ekimo_queue_jobs",
            "Jobs of the background queue, by state (incomplete: queued, scheduled or active).",
            "gauge",
            ("state",),
            {(state,): float(count) for state, count in counts.items()},
        )
    ]


class _Snapshot:
    """A Prometheus collector of figures already read (collectors are synchronous)."""

    def __init__(self, figures: Iterable[Figure]) -> None:
        self._figures = list(figures)

    def collect(self) -> Iterator[Metric]:
        for figure in self._figures:
            yield figure.family()


class _Together:
    """Several collectors as one exposition."""

    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


class _CachedFigures:
    """The figures of every source, read at most once per `ttl` by this process; scrapes that
    arrive during a read wait for it. A source that fails (or times out) is left out of that
    read, and `ekimo_figures_up` is 0 until a read succeeds again."""

    def __init__(self, container: Container, sources: Sequence[Figures], ttl: float) -> None:
        self._container = container
        self._sources = sources
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        self._figures: list[Figure] = []

    async def read(self) -> list[Figure]:
        async with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self._ttl:
                self._figures = await self._read_all()
                self._read_at = time.monotonic()
            return self._figures

    async def _read_all(self) -> list[Figure]:
        results = await asyncio.gather(*(self._read_one(source) for source in self._sources))
        figures = [figure for result in results if result is not None for figure in result]
        up = all(result is not None for result in results)
        figures.append(
            Figure(
                "ekimo_figures_up",
                "1 when every figure of the database and the queue was read at the last "
                "refresh, 0 when one could not be (those are then absent).",
                "gauge",
                values={(): 1.0 if up else 0.0},
            )
        )
        return figures

    async def _read_one(self, source: Figures) -> Sequence[Figure] | None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await source(self._container)
        except Exception:
            logger.warning("metrics: could not read %s", _name(source), exc_info=True)
            return None


def _name(source: Figures) -> str:
    return f"{getattr(source, '__module__', '?')}.{getattr(source, '__qualname__', source)}"


class _Requests:
    """The HTTP counts of one app, in a registry of its own (tests build many apps in one
    process: none registers a series twice)."""

    def __init__(self) -> None:
        # No `_created` series beside each counter and histogram: they would double the series
        # for little use (a process-wide switch of the library).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.answered = Counter(
            "ekimo_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "ekimo_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method.",
            ("route", "method"),
            registry=self.registry,
        )

    def exposed(self) -> Collector:
        """This process's counts, or every process's when they share a multiprocess directory
        (the process collectors have no multiprocess form: they are left out then)."""
        if os.environ.get(MULTIPROCESS_DIR):
            combined = CollectorRegistry()
            MultiProcessCollector(combined)
            return combined
        return self.registry


class Metrics:
    """The /metrics route of one app and the counting of its requests.

    `figures`: the domains' figure sources (the queue's is always read)."""

    def __init__(
        self,
        container: Container,
        figures: Sequence[Figures],
        *,
        ttl: float = FIGURES_TTL_SECONDS,
    ) -> None:
        self._requests = _Requests()
        self._figures = _CachedFigures(container, [queue_figures, *figures], ttl)
        self.route = self._route()

    def _route(self) -> HTTPRouteHandler:
        requests, cached = self._requests, self._figures

        # Open to everyone, like /health: skipped by the bearer-token middleware
        # (`exclude_from_auth`) and marked public for the access guard (`ekimo.users.guards`).
        @get(
            PATH,
            tags=["health"],
            summary="Prometheus metrics",
            description=(
                "Prometheus' text format: HTTP requests of this process by route template, "
                "method and status, their latency, and figures read from the database and the "
                f"queue (the same from every process; refreshed at most every "
                f"{FIGURES_TTL_SECONDS:g} s). Turned off by METRICS=false."
            ),
            media_type=CONTENT_TYPE_PLAIN_0_0_4,
            cache=False,
            security=[{}],
            opt={"public": True, "exclude_from_auth": True},
        )
        async def metrics() -> Response[bytes]:
            figures = await cached.read()
            body = generate_latest(_Together(requests.exposed(), _Snapshot(figures)))
            return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

        return metrics

    def count_requests(self, app: ASGIApp) -> ASGIApp:
        """`app` (Litestar's whole handler) with every HTTP request counted and timed."""
        requests = self._requests
        # The series of each label set, looked up once: `labels()` builds and locks per call.
        answered: dict[tuple[str, str, int], Counter] = {}
        durations: dict[tuple[str, str], Histogram] = {}

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500  # unless an answer begins

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                # Litestar's router puts the matched route's template in the scope.
                route = scope.get("path_template") or UNMATCHED
                method = scope["method"] if scope["method"] in _METHODS else "other"
                count = answered.get((route, method, status))
                if count is None:
                    count = requests.answered.labels(route, method, str(status))
                    answered[route, method, status] = count
                duration = durations.get((route, method))
                if duration is None:
                    duration = durations[route, method] = requests.duration.labels(route, method)
                count.inc()
                duration.observe(time.perf_counter() - started)

        return counted
