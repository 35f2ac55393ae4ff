"""The Prometheus metrics the app process exposes on /metrics (plain module: media/ may import it).

Every chunk upload passes through the app process's route (also when an ingest process stores it),
so its latency and outcome are counted there, once, with the ingest processes' time included.
Gauges that describe shared state (the job queue, storage, disk) are read when scraped or sampled,
not kept per process. The app process's registry only: a separate `python -m proctor_app worker`
shows in the queue figures and the Health page, not in the finalize histogram.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

chunk_ingest_seconds = Histogram(
    "proctor_chunk_ingest_seconds", "Chunk upload: from the request to the answer (body read, stored).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=registry)
chunk_uploads = Counter(
    "proctor_chunk_uploads", "Chunk uploads by outcome: stored, duplicate, 4xx, 503, 5xx.",
    ["outcome"], registry=registry)
job_seconds = Histogram(
    "proctor_job_seconds", "Job tries by kind (finalize...) and outcome: done, retry, failed, deferred.",
    ["kind", "outcome"], buckets=(0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600), registry=registry)
retention_runs = Counter(
    "proctor_retention_runs", "Retention runs by outcome: done, skipped, busy, failed.",
    ["outcome"], registry=registry)
retention_freed_bytes = Counter(
    "proctor_retention_freed_bytes", "Bytes deleted by retention runs.", registry=registry)
relay_bytes = Counter(
    "proctor_live_relay_bytes", "Encoded live video bytes: in from publishers, out to viewers.",
    ["direction"], registry=registry)
webhook_deliveries = Counter(
    "proctor_webhook_deliveries", "Webhook delivery tries by outcome: delivered, retry, failed, gone, refused.",
    ["outcome"], registry=registry)
webhook_seconds = Histogram(
    "proctor_webhook_seconds", "Webhook delivery tries: from the request to the receiver's answer.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry)
storage_bytes = Gauge(
    "proctor_storage_bytes", "Bytes in the storage folder (counted once a minute).", registry=registry)

# The labelled children looked up once: counting a chunk is then two lock-guarded additions.
_chunk_outcomes = {outcome: chunk_uploads.labels(outcome) for outcome in ("stored", "duplicate", "4xx",
                                                                           "503", "5xx")}
for direction in ("in", "out"):
    relay_bytes.labels(direction)


def count_chunk_upload(status: int, seconds: float) -> None:
    """One chunk upload answered with `status` after `seconds`."""
    chunk_ingest_seconds.observe(seconds)
    if status == 201:
        outcome = "stored"
    elif status < 300:
        outcome = "duplicate"
    elif status == 503:
        outcome = "503"
    else:
        outcome = "4xx" if status < 500 else "5xx"
    _chunk_outcomes[outcome].inc()
