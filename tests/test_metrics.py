"""Metrics counted in memory, rendered as prometheus_client renders its own,
and added up across the workers of one server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netcalc.metrics import LATENCY_BUCKETS, Tallies, TalliesCollector, WorkerFiles

TOKEN = "/api/auth/token"
OAUTH = "/oauth2/token"

# Below, on and past the bounds, since a bucket holds what equals its bound.
REQUESTS = [
    (TOKEN, "OK", 0.0004),
    (TOKEN, "OK", 0.001),
    (TOKEN, "OK", 0.0025),
    (TOKEN, "INVALID_CREDENTIALS", 0.0031),
    (OAUTH, "OK", 0.7),
    (OAUTH, "invalid_client", 3.5),
    (TOKEN, "OK", 0.0),
]


def samples(exposition: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample of a scrape, but the library's `_created` stamps."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def tallied(tallies: Tallies, files: WorkerFiles | None = None) -> bytes:
    registry = CollectorRegistry()
    registry.register(TalliesCollector(tallies, files))
    return generate_latest(registry)


def test_tallies_render_as_prometheus_clients_own_metrics() -> None:
    """The same requests give the same samples as the library's Counter and
    Histogram with the same names, labels and buckets."""
    registry = CollectorRegistry()
    requests = Counter(
        "netcalc_token_requests", "", ["endpoint", "status"], registry=registry
    )
    latency = Histogram(
        "netcalc_token_request_seconds",
        "",
        ["endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    refused = Counter("netcalc_connections_refused", "", ["reason"], registry=registry)
    tallies = Tallies()
    for endpoint, status, seconds in REQUESTS:
        requests.labels(endpoint, status).inc()
        latency.labels(endpoint).observe(seconds)
        tallies.token_request(endpoint, status, seconds)
    for reason in ("idle", "busy", "idle"):
        refused.labels(reason).inc()
        tallies.refusal(reason)

    assert samples(tallied(tallies)) == samples(generate_latest(registry))


def test_a_scrape_adds_up_every_workers_counts(tmp_path: Path) -> None:
    """Counts another worker left in the shared folder are added to this
    worker's own, and this worker's own file is not counted twice."""
    other = Tallies()
    other.token_request(TOKEN, "OK", 0.002)
    other.token_request(TOKEN, "OK", 0.02)
    other.refusal("busy")
    (tmp_path / "4242.json").write_text(json.dumps(other.as_json()))
    mine = Tallies()
    mine.token_request(TOKEN, "OK", 0.002)
    mine.token_request(OAUTH, "OK", 0.002)
    files = WorkerFiles(tmp_path, mine)
    files.write()

    scraped = samples(tallied(mine, files))

    labels = (("endpoint", TOKEN), ("status", "OK"))
    assert ("netcalc_token_requests_total", labels, 3.0) in scraped
    oauth = (("endpoint", OAUTH), ("status", "OK"))
    assert ("netcalc_token_requests_total", oauth, 1.0) in scraped
    at_most_5ms = (("endpoint", TOKEN), ("le", "0.005"))
    assert ("netcalc_token_request_seconds_bucket", at_most_5ms, 2.0) in scraped
    busy = (("reason", "busy"),)
    assert ("netcalc_connections_refused_total", busy, 1.0) in scraped


def test_a_worker_writes_its_file_only_when_its_counts_changed(
    tmp_path: Path,
) -> None:
    """An idle worker leaves its file alone; a new count replaces it whole."""
    tallies = Tallies()
    files = WorkerFiles(tmp_path, tallies)
    files.write()
    (written,) = tmp_path.iterdir()
    written.unlink()

    files.write()
    assert list(tmp_path.iterdir()) == []

    tallies.token_request(TOKEN, "OK", 0.002)
    files.write()
    assert [path.suffix for path in tmp_path.iterdir()] == [".json"]
    counts = json.loads(written.read_text())
    assert counts["token_requests"] == [[TOKEN, "OK", 1]]


@pytest.mark.parametrize(
    "garbage",
    [
        "{not json",
        "[]",
        '{"token_requests": [["/api/auth/token", "OK", "seven"]]}',
        '{"token_requests": [], "latency": {"x": {"buckets": [1], "sum": 0}}}',
    ],
    ids=["not-json", "not-an-object", "not-a-number", "missing-refused"],
)
def test_a_file_that_holds_no_counts_is_skipped(
    tmp_path: Path, garbage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A scrape leaves out, with a warning, a file in the folder that holds
    no worker's counts, and still reports the rest."""
    (tmp_path / "4242.json").write_text(garbage)
    mine = Tallies()
    mine.token_request(TOKEN, "OK", 0.002)

    scraped = samples(tallied(mine, WorkerFiles(tmp_path, mine)))

    labels = (("endpoint", TOKEN), ("status", "OK"))
    assert ("netcalc_token_requests_total", labels, 1.0) in scraped
    assert "skipped 4242.json in the metrics folder" in caplog.text


def test_scrapes_by_either_worker_never_count_less(tmp_path: Path) -> None:
    """Scrapes answered in turn by two workers, one busy between its
    timer's writes, never report fewer requests than an earlier scrape."""
    busy, quiet = Tallies(), Tallies()
    busy_files, quiet_files = WorkerFiles(tmp_path, busy), WorkerFiles(tmp_path, quiet)
    ok = ("netcalc_token_requests_total", (("endpoint", TOKEN), ("status", "OK")))

    def counted(tallies: Tallies, files: WorkerFiles) -> float:
        scraped = samples(tallied(tallies, files))
        return next((v for name, labels, v in scraped if (name, labels) == ok), 0.0)

    reported = []
    for _ in range(3):
        for _ in range(10):
            busy.token_request(TOKEN, "OK", 0.002)
        reported.append(counted(busy, busy_files))
        reported.append(counted(quiet, quiet_files))
    assert reported == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0]
