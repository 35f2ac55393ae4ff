"""Operator monitoring against the real server: /metrics parses with the Prometheus client's parser
and its chunk counters move with real uploads; /metrics refuses a missing token and a foreign
address; readiness checks the database, storage, ingest processes and the job worker; the server's
log lines carry the attempt id."""

import asyncio
import hashlib

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from proctor_app.api.monitoring import MetricsAccess, monitoring_routes
from proctor_app.db import session_scope
from proctor_app.media.jobs.worker import Worker
from proctor_app.models import Attempt
from proctor_app.services import attempts
from proctor_app.services.readiness import Readiness
from tests.support.polling import wait_for
from tests.support.uploads import chunk_headers, chunk_url

FOREIGN = ("203.0.113.9", 40000)
LOCAL = ("127.0.0.1", 40000)


def scrape(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    """(sample name, labels) -> value, parsed with the client library's own parser."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def uploads(figures, outcome: str) -> float:
    return figures[("proctor_chunk_uploads_total", (("outcome", outcome),))]


def put(client, grant, seq: int, body: bytes, token: str | None = None, **headers) -> httpx.Response:
    return client.put(chunk_url(grant.attempt_id, seq), content=body,
                      headers=chunk_headers(body, token or grant.token, seq, **headers))


def test_metrics_parse_and_ingest_counters_follow_real_uploads(client, grant):
    before = scrape(client)
    body = b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40
    assert put(client, grant, 0, body).status_code == 201
    assert put(client, grant, 1, body).status_code == 201
    assert put(client, grant, 1, body).status_code == 200  # the same bytes again
    assert put(client, grant, 2, body, token="not-a-token").status_code == 401
    assert put(client, grant, 3, body, **{"X-Content-SHA256": hashlib.sha256(b"x").hexdigest()}).status_code == 400
    after = scrape(client)
    assert uploads(after, "stored") - uploads(before, "stored") == 2
    assert uploads(after, "duplicate") - uploads(before, "duplicate") == 1
    assert uploads(after, "4xx") - uploads(before, "4xx") == 2
    assert uploads(after, "503") == uploads(before, "503")
    count = ("proctor_chunk_ingest_seconds_count", ())
    assert after[count] - before[count] == 5
    # The figures read when scraped are there too.
    for name in ("proctor_job_queue_depth", "proctor_job_queue_oldest_seconds", "proctor_disk_free_bytes",
                 "proctor_ingest_processes_alive"):
        assert (name, ()) in after, name
    assert ("proctor_live_sessions", (("role", "publish"),)) in after
    assert ("proctor_live_relay_bytes_total", (("direction", "in"),)) in after


def test_liveness_and_readiness_of_the_running_server(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    answer = client.get("/api/ready")
    assert answer.status_code == 200, answer.text
    checks = answer.json()["checks"]
    assert set(checks) == {"database", "storage", "ingest", "job_worker"}
    assert all(check["ok"] for check in checks.values()), checks


def _app(access: MetricsAccess, readiness: Readiness | None = None) -> Starlette:
    return Starlette(routes=monitoring_routes(access, readiness or Readiness(lambda: None)))


async def _get(app, path: str, client_address=LOCAL, token: str | None = None,
               forwarded_for: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    transport = httpx.ASGITransport(app=app, client=client_address)
    async with httpx.AsyncClient(transport=transport, base_url="http://proctor") as http:
        return await http.get(path, headers=headers)


async def test_metrics_refused_to_a_foreign_address_without_the_token(demo_db):
    by_address = _app(MetricsAccess(allow=("127.0.0.1", "::1"), token="", trusted_proxies=("127.0.0.1",)))
    refused = await _get(by_address, "/metrics", FOREIGN)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 403
    assert (await _get(by_address, "/metrics", FOREIGN, token="guess")).status_code == 403
    assert (await _get(by_address, "/metrics", LOCAL)).status_code == 200
    assert (await _get(by_address, "/metrics", ("10.1.2.3", 1))).status_code == 403
    # Behind the reverse proxy on this host the peer is local: the forwarded client decides.
    assert (await _get(by_address, "/metrics", LOCAL, forwarded_for=FOREIGN[0])).status_code == 403
    assert (await _get(by_address, "/metrics", LOCAL, forwarded_for="127.0.0.1")).status_code == 200

    with_token = _app(MetricsAccess(allow=("10.0.0.0/8",), token="s3cret-metrics", trusted_proxies=()))
    refused = await _get(with_token, "/metrics", FOREIGN)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert (await _get(with_token, "/metrics", FOREIGN, token="s3cret-metric")).status_code == 401
    assert (await _get(with_token, "/metrics", LOCAL)).status_code == 401  # not in this allow-list
    answer = await _get(with_token, "/metrics", FOREIGN, token="s3cret-metrics")
    assert answer.status_code == 200 and "proctor_chunk_uploads_total" in answer.text
    assert (await _get(with_token, "/metrics", ("10.1.2.3", 1))).status_code == 200


async def test_readiness_fails_when_storage_is_unwritable(demo_db, tmp_path):
    worker = Worker({}, poll_s=0.05)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.to_thread(wait_for, lambda: worker.round_at is not None)
        writable = _app(MetricsAccess((), "", ()), Readiness(lambda: tmp_path, worker=worker))
        assert (await _get(writable, "/api/ready")).status_code == 200
        # A storage folder that cannot take a file (its path goes through a regular file).
        (tmp_path / "file").write_bytes(b"")
        broken = _app(MetricsAccess((), "", ()), Readiness(lambda: tmp_path / "file" / "storage", worker=worker))
        answer = await _get(broken, "/api/ready")
        assert answer.status_code == 503
        checks = answer.json()["checks"]
        assert not checks["storage"]["ok"] and checks["database"]["ok"] and checks["job_worker"]["ok"]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_readiness_fails_when_the_job_worker_stops_or_hangs(demo_db, tmp_path):
    clock = {"now": 0.0}
    worker = Worker({}, poll_s=0.05)
    app = _app(MetricsAccess((), "", ()), Readiness(lambda: tmp_path, worker=worker,
                                                monotonic=lambda: clock["now"]))
    answer = await _get(app, "/api/ready")
    assert answer.status_code == 503 and answer.json()["checks"]["job_worker"]["detail"] == "not running"
    running = asyncio.create_task(worker.run())
    await asyncio.to_thread(wait_for, lambda: worker.round_at is not None)
    clock["now"] = worker.round_at + 1
    assert (await _get(app, "/api/ready")).status_code == 200
    clock["now"] = worker.round_at + 31  # its loop silent (stuck) for 31 s
    answer = await _get(app, "/api/ready")
    assert answer.status_code == 503 and "no round" in answer.json()["checks"]["job_worker"]["detail"]
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    clock["now"] = 0.0
    assert (await _get(app, "/api/ready")).status_code == 503


def test_server_log_lines_carry_the_attempt_id(client, grant, app_server, clip):
    assert put(client, grant, 0, clip[:200_000]).status_code == 201
    with session_scope() as db:
        attempts.submit(db, db.get(Attempt, grant.attempt_id))
    flushed = client.post(f"/api/attempts/{grant.attempt_id}/events",
                          json={"events": [{"id": "flushed", "kind": "uploads_flushed", "data": {}}]},
                          headers={"Authorization": f"Bearer {grant.token}"})
    assert flushed.status_code == 200, flushed.text
    attempt = f"attempt={grant.attempt_id} "
    lines = wait_for(lambda: [line for line in app_server.log_path.read_text().splitlines()
                              if attempt in line and "(finalize) done after" in line],
                     timeout=90, what="the finalize job's last log line")
    log = app_server.log_path.read_text()
    assert f"INFO proctor_app.jobs {attempt}finalize of attempt {grant.attempt_id} started" in log
    assert lines[0].split(" ")[1] == "INFO"
