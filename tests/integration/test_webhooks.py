"""Webhooks end to end: endpoints managed through /api/v1 on the running app, events written by
real changes (in this process and in the server's), delivered by the server's delivery loop to a
real receiver that verifies every signature with the standardwebhooks library."""

import asyncio
import dataclasses
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import select
from standardwebhooks import Webhook

from proctor_app.db import session_scope
from proctor_app.models import ApiSession, Attempt, HealthSample, Organisation, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from proctor_app.services import attempts, uploads
from proctor_app.services.webhooks import endpoints
from proctor_app.services.webhooks.delivery import (
    MAX_TRIES,
    DeliveryLoop,
    Due,
    Tried,
    retry_delay_s,
    save_result,
    signed_headers,
)
from proctor_app.services.webhooks.notices import announce_expiring, announce_started_alerts
from proctor_app.services.webhooks.outbox import record
from tests.support import samples
from tests.support.api import make_caller, session_body, wrap_attempt
from tests.support.finalized import CLIP_S
from tests.support.polling import wait_for
from tests.support.retention_media import NOW, make_media_attempt
from tests.support.server import free_port
from tests.support.uploads import chunk_headers, chunk_url
from tests.support.webhook_receiver import Receiver

PROBLEM = "application/problem+json"
pytestmark = pytest.mark.usefixtures("demo_db")


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def caller(demo_db):
    with session_scope() as db:
        return make_caller(db)


@pytest.fixture
def api(app_server, caller):
    with httpx.Client(base_url=f"{app_server.url}/api/v1", headers=caller.headers, timeout=60) as client:
        yield client


def _endpoint(api, receiver, path: str, events=("*",)) -> dict:
    answer = api.post("/webhooks", json={"url": receiver.url(path), "events": list(events)})
    assert answer.status_code == 201, answer.text
    receiver.secrets[path] = answer.json()["secret"]
    return answer.json()


def _started_session(api) -> tuple[str, dict, int]:
    created = api.post("/sessions", json=session_body())
    assert created.status_code == 201, created.text
    session = created.json()
    with session_scope() as db:
        attempt_id = db.exec(select(ApiSession.attempt_id).where(ApiSession.public_id == session["id"])).one()
        attempt = db.get(Attempt, attempt_id)
        attempts.accept_consent(db, attempt, "terms")
        attempts.start(db, attempt, 0)
    return session["id"], session, attempt_id


def test_a_sessions_whole_life_is_reported_in_order_signed(api, app_server, receiver, clip):
    _endpoint(api, receiver, "/life")
    session_id, session, attempt_id = _started_session(api)
    with session_scope() as db:
        grant = uploads.issue_upload_token(db, db.get(Attempt, attempt_id))
    began_ms = int(time.time() * 1000)
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        for seq, body in enumerate(samples.cut(clip, CLIP_S)):
            times = {"X-Chunk-Start-Ms": str(began_ms + seq * 3000), "X-Chunk-End-Ms": str(began_ms + seq * 3000 + 3000)}
            put = client.put(chunk_url(attempt_id, seq), content=body,
                             headers=chunk_headers(body, grant.token, seq, **times))
            assert put.status_code == 201, put.text
        events = client.post(f"/api/attempts/{attempt_id}/events", headers={"Authorization": f"Bearer {grant.token}"},
                             json={"events": [{"id": "lost", "kind": "camera_lost", "data": {}}]})
        assert events.status_code == 200, events.text
        assert api.post(f"/sessions/{session_id}/end").status_code == 200
        client.post(f"/api/attempts/{attempt_id}/events", headers={"Authorization": f"Bearer {grant.token}"},
                    json={"events": [{"id": "flushed", "kind": "uploads_flushed", "data": {}}]})
    wait_for(lambda: "recording.completed" in receiver.types("/life"), timeout=120, what="recording.completed")
    assert receiver.bad_signatures == []
    assert receiver.types("/life") == ["session.started", "event.critical", "session.ended",
                                       "recording.processing", "recording.completed"]
    for got in receiver.acknowledged("/life"):
        assert got.envelope["data"]["session_id"] == session_id
        assert got.envelope["data"]["external_id"] == session["external_id"]
        assert got.envelope["timestamp"].endswith("Z")
    completed = receiver.acknowledged("/life")[-1].envelope["data"]
    # (The recording is cut to the attempt's own time, under a second here.)
    assert completed["stream"] == "camera" and completed["duration_s"] > 0 and completed["size"] > 0
    # A round's results are saved once all its sends are answered: the last answer may come first.
    figures = wait_for(lambda: (found := api.get("/metrics").json())["webhooks"]["tries"] >= 5 and found,
                       timeout=10, what="the deliveries' results saved")
    assert figures["recordings"].get("completed", 0) >= 1 and figures["webhooks"]["success_rate"] == 1.0


def _operator_style_event(organisation_id: int, data: dict) -> str:
    with session_scope() as db:
        return record(db, "media.expiring", organisation_id, data).public_id


def test_a_500_is_retried_with_the_same_webhook_id_and_acknowledged_once(api, caller, receiver):
    _endpoint(api, receiver, "/flaky")
    receiver.script["/flaky"] = [500]
    webhook_id = _operator_style_event(caller.organisation_id, {"n": 1})
    wait_for(lambda: receiver.acknowledged("/flaky"), timeout=30, what="the retry")
    tries = [r for r in receiver.received if r.path == "/flaky"]
    assert [r.answered for r in tries] == [500, 200]
    assert {r.webhook_id for r in tries} == {webhook_id}
    assert len(receiver.acknowledged("/flaky")) == 1

    def tried() -> list[WebhookAttempt]:
        with session_scope() as db:
            return list(db.exec(select(WebhookAttempt).join(WebhookDelivery).join(WebhookEndpoint)
                                .where(WebhookEndpoint.organisation_id == caller.organisation_id)
                                .order_by(WebhookAttempt.number)))

    # (The sender writes a round's results once the round's requests are answered.)
    log = wait_for(lambda: (found := tried()) and found[-1].ok and found, timeout=10, what="the second try logged")
    assert [(a.number, a.status_code, a.ok) for a in log] == [(1, 500, False), (2, 200, True)]
    assert log[0].excerpt == "no thanks" and log[1].latency_ms > 0


def test_a_410_disables_the_endpoint(api, caller, receiver):
    endpoint = _endpoint(api, receiver, "/gone")
    receiver.script["/gone"] = [410]
    _operator_style_event(caller.organisation_id, {"n": 1})
    wait_for(lambda: not api.get(f"/webhooks/{endpoint['id']}").json()["enabled"], timeout=30, what="disabled")
    assert "410" in api.get(f"/webhooks/{endpoint['id']}").json()["disabled_reason"]
    with session_scope() as db:
        assert record(db, "media.expiring", caller.organisation_id, {"n": 2}) is None  # no delivery any more
    resumed = api.patch(f"/webhooks/{endpoint['id']}", json={"enabled": True})
    assert resumed.json()["enabled"] is True and resumed.json()["disabled_reason"] == ""


def test_endpoints_api_scopes_organisations_and_rotation(api, app_server, caller, receiver):
    endpoint = _endpoint(api, receiver, "/crud", events=["session.ended", "recording.failed"])
    assert endpoint["events"] == ["session.ended", "recording.failed"] and endpoint["id"].startswith("wh_")
    assert "secret" not in api.get(f"/webhooks/{endpoint['id']}").json()
    assert [e["id"] for e in api.get("/webhooks").json()["items"]] == [endpoint["id"]]
    assert api.post("/webhooks", json={"url": receiver.url("/x"), "events": ["nope"]}).status_code == 422
    assert api.post("/webhooks", json={"url": "ftp://example.com/", "events": ["*"]}).status_code == 422
    assert api.post("/webhooks", content=b"{", headers={"content-type": "application/json"}).status_code in (400, 422)
    with session_scope() as db:
        other = make_caller(db)
        reader = make_caller(db, scopes=["sessions:read"], slug=db.get(Organisation, caller.organisation_id).slug)
    assert api.get(f"/webhooks/{endpoint['id']}", headers=other.headers).status_code == 404
    refused = api.get("/webhooks", headers=reader.headers)
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(PROBLEM)
    assert api.get("/webhooks", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.get("/metrics", headers=reader.headers).status_code == 403
    assert api.get("/metrics", params={"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}).status_code == 422

    old_secret = endpoint["secret"]
    rotated = api.post(f"/webhooks/{endpoint['id']}/rotate-secret").json()
    assert rotated["secret"] != old_secret
    with session_scope() as db:
        row = endpoints.endpoint_of(db, caller.organisation_id, endpoint["id"])
        headers = signed_headers("msg_x", '{"a":1}', endpoints.signing_secrets(row, utcnow()), utcnow())
    for secret in (old_secret, rotated["secret"]):  # both verify during the overlap
        assert Webhook(secret).verify('{"a":1}', headers) == {"a": 1}

    assert api.delete(f"/webhooks/{endpoint['id']}").status_code == 204
    assert api.get(f"/webhooks/{endpoint['id']}").status_code == 404
    document = httpx.get(f"{app_server.url}/api/v1/openapi.json").json()
    assert {"/webhooks", "/webhooks/{endpoint_id}", "/metrics"} <= set(document["paths"])


def test_private_addresses_are_refused_unless_allowed(api, caller, receiver, monkeypatch):
    monkeypatch.delenv(endpoints.ALLOW_PRIVATE_ENV)
    for url in ("http://127.0.0.1:9/", "http://10.1.2.3/", "http://169.254.169.254/", "http://[::1]/",
                "http://localhost/"):
        with pytest.raises(endpoints.EndpointError, match="loopback, private or link-local"):
            endpoints.checked_url(url)
    # Checked again before each try: an endpoint made while allowed is not called now.
    monkeypatch.setenv(endpoints.ALLOW_PRIVATE_ENV, "1")
    endpoint = _endpoint(api, receiver, "/private")
    monkeypatch.delenv(endpoints.ALLOW_PRIVATE_ENV)
    with session_scope() as db:
        row = endpoints.endpoint_of(db, caller.organisation_id, endpoint["id"])
        event = record(db, "media.expiring", caller.organisation_id, {"n": 1})
        db.flush()
        delivery = db.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)).one()
        delivery.next_try_at = utcnow().replace(year=2100)  # out of the server's loop's reach
        db.add(delivery)
        db.flush()
        due = Due(delivery.id, row.id, 1, event.public_id, "{}", row.url, [row.secret])
    loop = DeliveryLoop()

    async def send():
        async with httpx.AsyncClient() as loop._client:
            return await loop.send(due)

    assert asyncio.run(send()) == "retry"
    assert receiver.received == []
    with session_scope() as db:
        tried = db.exec(select(WebhookAttempt).where(WebhookAttempt.delivery_id == due.delivery_id)).one()
    assert tried.excerpt.startswith("not sent:") and tried.status_code is None


def test_media_expiring_then_deleted_by_erasure_with_its_cause(api, caller, receiver):
    _endpoint(api, receiver, "/media", events=["media.expiring", "media.deleted"])
    with session_scope() as db:
        made = make_media_attempt(db, ended_ago=timedelta(days=28))
        session = wrap_attempt(db, caller.organisation_id, made.attempt_id)
        session_id = session.public_id
    with session_scope() as db:  # retention keeps 30 days; the notice goes 3 days before
        assert announce_expiring(db, NOW) >= 1
    with session_scope() as db:
        assert announce_expiring(db, NOW) == 0  # once per attempt
    assert api.delete(f"/sessions/{session_id}/media").status_code == 200
    wait_for(lambda: len(receiver.acknowledged("/media")) == 2, timeout=30, what="both media events")
    expiring, deleted = (r.envelope for r in receiver.acknowledged("/media"))
    assert expiring["type"] == "media.expiring" and expiring["data"]["session_id"] == session_id
    assert expiring["data"]["deleted_after"].startswith("2026-11-24")
    assert deleted["type"] == "media.deleted" and deleted["data"]["cause"] == "Erasure requested through the API."


def test_an_alert_that_starts_goes_to_the_install_endpoint(app_server, receiver):
    at = utcnow() + timedelta(days=400)  # samples of its own, newer than the server's
    with session_scope() as db:
        endpoint = endpoints.create_endpoint(db, None, receiver.url("/operator"), ["operator.alert"])
        receiver.secrets["/operator"] = endpoint.secret
        db.add_all([HealthSample(taken_at=at - timedelta(minutes=1), jobs_done=10),
                    HealthSample(taken_at=at, jobs_done=5, jobs_failed=5)])
    try:
        with session_scope() as db:
            assert announce_started_alerts(db, at) == 1
            # The next sample still crosses: the same alert goes on, nothing new is sent.
            db.add(HealthSample(taken_at=at + timedelta(minutes=1), jobs_done=5, jobs_failed=5))
            db.flush()
            assert announce_started_alerts(db, at + timedelta(minutes=1)) == 0
        wait_for(lambda: receiver.acknowledged("/operator"), timeout=30, what="operator.alert")
        data = receiver.acknowledged("/operator")[0].envelope["data"]
        assert data["alert"] == "failure_rate" and "5 of 10" in data["message"]
    finally:
        with session_scope() as db:
            db.exec(delete(HealthSample).where(HealthSample.taken_at >= at - timedelta(minutes=1)))
            endpoints.update_endpoint(db, db.get(WebhookEndpoint, endpoint.id), enabled=False)


def test_a_day_of_failures_pauses_the_endpoint_and_later_events_wait_for_it(caller, receiver):
    with session_scope() as db:
        endpoint = endpoints.create_endpoint(db, caller.organisation_id, receiver.url("/down"), ["*"])
        event = record(db, "media.expiring", caller.organisation_id, {"n": 1})
        db.flush()
        delivery = db.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)).one()
        delivery.next_try_at = utcnow().replace(year=2100)  # out of the server's sender's reach
        db.add(delivery)
        due = Due(delivery.id, endpoint.id, MAX_TRIES - 1, event.public_id, "{}", endpoint.url, [endpoint.secret])
        delays = [retry_delay_s(n) for n in range(1, MAX_TRIES)]
    assert 18 * 3600 < sum(delays) < 40 * 3600  # retried for about a day
    with session_scope() as db:
        assert save_result(db, Tried(due, utcnow(), 503, 5.0, "busy", False)) == "retry"
        assert save_result(db, Tried(dataclasses.replace(due, tries=MAX_TRIES), utcnow(), None, 10_000.0, "ReadTimeout", False)) == "failed"
    with session_scope() as db:
        paused = db.get(WebhookEndpoint, endpoint.id)
        assert not paused.enabled and paused.disabled_reason.startswith("paused")
        later = record(db, "media.expiring", caller.organisation_id, {"n": 2})
        assert later is not None  # kept for when it is enabled again
        db.flush()
        kept = db.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == later.id)).one()
        assert kept.status == "pending"
        db.delete(kept)  # not for the server's sender once another test enables endpoints


def test_a_delivery_due_while_the_server_is_down_is_sent_after_its_restart(api, app_server, caller):
    # Last in the module: it restarts the session's server.
    port = free_port()
    endpoint = _endpoint(api, Receiver(port=port), "/later")
    app_server.stop()
    try:
        webhook_id = _operator_style_event(caller.organisation_id, {"while": "down"})
    finally:
        app_server.start()
    receiver = Receiver(port=port, secrets={"/later": endpoint["secret"]}).start()
    try:
        wait_for(lambda: receiver.acknowledged("/later"), timeout=60, what="the delivery after the restart")
        assert [r.webhook_id for r in receiver.acknowledged("/later")] == [webhook_id]
        assert receiver.bad_signatures == []
    finally:
        receiver.stop()
