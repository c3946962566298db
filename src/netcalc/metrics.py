"""Prometheus metrics: counted in each worker's memory, added up at a scrape.

prometheus_client's Counter and Histogram take a lock for each value they
change, which cost a token request about as much as its log line. Here a
token request is counted with a few dictionary writes, and `/metrics`
renders the counts through a collector, in the exposition format the
library's own metrics have.

With several workers behind one port, a scrape reaches whichever worker
accepts it. So `serve --workers N` gives the workers a folder of their own
(`NETCALC_WORKER_METRICS_DIR`), where each one replaces a file of its counts
once a second while they change. The worker that answers a scrape first
writes its own file, then adds up the others' files and its own counts, so
every scrape sees the whole server, the others' counts at most about a
second old, and never less than an earlier scrape saw: a file only grows,
and each scrape leaves its answering worker's file as new as it reported.
A worker killed outright loses the counts of its last second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from netcalc.outages import log_background_failure

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds, in seconds, of the token latency histogram's buckets."""

FOLDER_VARIABLE = "NETCALC_WORKER_METRICS_DIR"
"""Where `serve` tells its workers which folder they share; set by `serve`
itself, not by users."""

WRITE_SECONDS = 1.0
"""How often a worker replaces its file while its counts change."""

logger = logging.getLogger("netcalc")


class Tallies:
    """One process's counts since it started."""

    def __init__(self) -> None:
        self.token_requests: dict[tuple[str, str], int] = {}
        self.latency_buckets: dict[str, list[int]] = {}
        """Per endpoint, the requests in each bucket, not cumulative; the
        last one past every bound."""
        self.latency_sums: dict[str, float] = {}
        self.refused: dict[str, int] = {}
        self.changes = 0

    def token_request(self, endpoint: str, status: str, seconds: float) -> None:
        """Count one answered token request and its latency."""
        key = (endpoint, status)
        self.token_requests[key] = self.token_requests.get(key, 0) + 1
        buckets = self.latency_buckets.get(endpoint)
        if buckets is None:
            buckets = self.latency_buckets[endpoint] = _no_requests()
            self.latency_sums[endpoint] = 0.0
        # A bucket holds what is at most its bound ("le"), as bisect_left finds.
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sums[endpoint] += seconds
        self.changes += 1

    def refusal(self, reason: str) -> None:
        """Count one request refused, or connection closed, by a bound."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.changes += 1

    def as_json(self) -> dict[str, Any]:
        """The counts as a JSON document, for the other workers to read."""
        return {
            "token_requests": [[*key, n] for key, n in self.token_requests.items()],
            "latency": {
                endpoint: {"buckets": buckets, "sum": self.latency_sums[endpoint]}
                for endpoint, buckets in self.latency_buckets.items()
            },
            "refused": self.refused,
        }

    def add(self, counts: dict[str, Any]) -> None:
        """Add another worker's counts, as `as_json` wrote them."""
        for endpoint, status, n in counts["token_requests"]:
            key = (endpoint, status)
            self.token_requests[key] = self.token_requests.get(key, 0) + n
        for endpoint, latency in counts["latency"].items():
            mine = self.latency_buckets.setdefault(endpoint, _no_requests())
            for index, n in enumerate(latency["buckets"]):
                mine[index] += n
            sums = self.latency_sums
            sums[endpoint] = sums.get(endpoint, 0.0) + latency["sum"]
        for reason, n in counts["refused"].items():
            self.refused[reason] = self.refused.get(reason, 0) + n


def _no_requests() -> list[int]:
    """Empty latency buckets: one per bound, and one past them all."""
    return [0] * (len(LATENCY_BUCKETS) + 1)


TALLIES = Tallies()
"""This process's counts."""


class WorkerFiles:
    """The folder where the workers of one server leave their counts."""

    def __init__(self, folder: Path, tallies: Tallies) -> None:
        self._folder = folder
        self._tallies = tallies
        # Not the process id alone: a worker started again may be given the
        # id of one that ended, whose counts must stay counted.
        self._own = folder / f"{os.getpid()}-{secrets.token_hex(4)}.json"
        self._written = -1
        self._task: asyncio.Task[None] | None = None

    def write(self) -> None:
        """Replace this worker's file with its counts, if they changed."""
        changes = self._tallies.changes
        if changes == self._written:
            return
        # Made again if something has cleared the temporary folder away.
        self._folder.mkdir(mode=0o700, exist_ok=True)
        # Written aside, then renamed over the old file: a reader sees the
        # old counts or the new ones, never half a file.
        draft = self._own.with_suffix(".draft")
        draft.write_text(json.dumps(self._tallies.as_json()))
        draft.replace(self._own)
        self._written = changes

    def others(self) -> Iterator[Tallies]:
        """The counts every other worker wrote, a worker that ended included."""
        for path in self._folder.glob("*.json"):
            if path == self._own:
                continue
            counts = Tallies()
            try:
                counts.add(json.loads(path.read_text()))
            except FileNotFoundError:
                # The server is stopping and has taken the folder away.
                continue
            except (OSError, ValueError, LookupError, TypeError) as exc:
                logger.warning(
                    "skipped %s in the metrics folder: it holds no worker's "
                    "counts (%s)",
                    path.name,
                    exc,
                )
                continue
            yield counts

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_writing())

    async def stop(self) -> None:
        """Stop the timer and write the last counts, for the workers that
        go on serving."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.share()

    async def _keep_writing(self) -> None:
        while True:
            await asyncio.sleep(WRITE_SECONDS)
            self.share()

    def share(self) -> None:
        """Write this worker's counts, if they changed, logging a failure:
        whichever worker answers the next scrape then reports at least what
        this one reports now."""
        try:
            self.write()
        except OSError as exc:
            log_background_failure("sharing this worker's metrics", exc)


def worker_files(tallies: Tallies = TALLIES) -> WorkerFiles | None:
    """The folder `serve` gave this worker to share its counts in, if any."""
    folder = os.environ.get(FOLDER_VARIABLE)
    return WorkerFiles(Path(folder), tallies) if folder else None


class TalliesCollector(Collector):
    """Renders the counts of every worker of this server as Prometheus metrics."""

    def __init__(self, tallies: Tallies, files: WorkerFiles | None = None) -> None:
        self._tallies = tallies
        self.files = files

    def collect(self) -> Iterator[Metric]:
        total = Tallies()
        total.add(self._tallies.as_json())
        if self.files is not None:
            self.files.share()
            for counts in self.files.others():
                total.add(counts.as_json())
        yield _token_requests(total)
        yield _token_latency(total)
        yield _refusals(total)


def _token_requests(total: Tallies) -> Metric:
    family = CounterMetricFamily(
        "netcalc_token_requests",
        "Token requests answered, by endpoint and contract status.",
        labels=["endpoint", "status"],
    )
    for (endpoint, status), n in sorted(total.token_requests.items()):
        family.add_metric([endpoint, status], n)
    return family


def _token_latency(total: Tallies) -> Metric:
    family = HistogramMetricFamily(
        "netcalc_token_request_seconds",
        "Time to answer a token request.",
        labels=["endpoint"],
    )
    bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
    for endpoint, buckets in sorted(total.latency_buckets.items()):
        cumulative, running = [], 0
        for bound, n in zip(bounds, buckets, strict=True):
            running += n
            cumulative.append((bound, running))
        family.add_metric([endpoint], cumulative, total.latency_sums[endpoint])
    return family


def _refusals(total: Tallies) -> Metric:
    family = CounterMetricFamily(
        "netcalc_connections_refused",
        "Requests refused or connections closed by a connection bound, by "
        "reason: head_too_large, timeout, idle (opened, never used), evicted "
        "(kept alive idle, closed for a new connection at the cap), busy or "
        "pipeline.",
        labels=["reason"],
    )
    for reason, n in sorted(total.refused.items()):
        family.add_metric([reason], n)
    return family


COLLECTOR = TalliesCollector(TALLIES)
"""Registered once, with prometheus_client's default registry."""

REGISTRY.register(COLLECTOR)
