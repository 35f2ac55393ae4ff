"""The candidate side of API sessions against the ASGI app: the one-time launch link, the SDK's
session token and its origin check, the SDK bundle, and the organisations' allowed origins."""

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from proctor_app.api import build_api
from proctor_app.auth.sessions import SESSION_COOKIE, user_for_token
from proctor_app.db import session_scope
from proctor_app.models import ApiSession, Attempt, AttemptStatus, Organisation, ProctoringEvent, utcnow
from proctor_app.services import organisations, sdk_sessions
from tests.support.api import make_caller, session_body

SITE = "https://exams.example.org"
OTHER_SITE = "https://elsewhere.example.net"


@pytest.fixture(scope="module")
def api(demo_db):
    with TestClient(build_api(), base_url="http://proctor.test", follow_redirects=False) as client:
        yield client


@pytest.fixture
def org_a(demo_db):
    with session_scope() as db:
        caller = make_caller(db)
        organisations.set_allowed_origins(db, None, caller.organisation_id, SITE)
        return caller


@pytest.fixture
def org_b(demo_db):
    with session_scope() as db:
        return make_caller(db)


def _create(api, caller, **fields) -> dict:
    response = api.post("/api/v1/sessions", json=session_body(**fields), headers=caller.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _row(public_id: str) -> tuple[ApiSession, Attempt]:
    with session_scope() as db:
        session = db.exec(select(ApiSession).where(ApiSession.public_id == public_id)).one()
        return session, db.get(Attempt, session.attempt_id)


def test_the_launch_link_signs_in_the_sessions_candidate_once(api, org_a):
    created = _create(api, org_a, return_url="https://lms.example/back")
    path = created["candidate_url"].removeprefix("http://proctor.test")
    first = api.get(path)
    session, attempt = _row(created["id"])
    assert first.status_code == 303 and first.headers["location"] == f"/proctoring/{attempt.exam_id}"
    token = first.cookies[SESSION_COOKIE]
    assert user_for_token(token).id == attempt.candidate_id
    assert session.launch_used_at is not None
    api.cookies.clear()
    again = api.get(path)
    assert again.status_code == 410 and "already used" in again.text
    assert SESSION_COOKIE not in again.cookies
    assert api.get("/launch/not-a-token").status_code == 410


def test_an_expired_launch_link_is_refused(api, org_a):
    created = _create(api, org_a)
    with session_scope() as db:
        session = db.exec(select(ApiSession).where(ApiSession.public_id == created["id"])).one()
        session.launch_expires_at = utcnow() - timedelta(seconds=1)
        db.add(session)
    response = api.get(created["candidate_url"].removeprefix("http://proctor.test"))
    assert response.status_code == 410 and "expired" in response.text
    assert _row(created["id"])[0].launch_used_at is None


def test_session_token_needs_the_scope_and_the_organisation(api, org_a, org_b):
    created = _create(api, org_a)
    url = f"/api/v1/sessions/{created['id']}/token"
    assert api.post(url, headers=org_b.headers).status_code == 404
    with session_scope() as db:
        reader = make_caller(db, scopes=["sessions:read"], slug=db.get(Organisation, org_a.organisation_id).slug)
    assert api.post(url, headers=reader.headers).status_code == 403
    assert api.post(url).status_code == 401
    answer = api.post(url, headers=org_a.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token"].startswith(created["id"] + ".")
    assert "/sessions/{session_id}/token" in api.get("/api/v1/openapi.json").json()["paths"]


def _token(api, caller, session_id: str) -> str:
    return api.post(f"/api/v1/sessions/{session_id}/token", headers=caller.headers).json()["token"]


def test_the_sdk_records_only_from_an_allowed_origin(api, org_a):
    created = _create(api, org_a)
    token = _token(api, org_a, created["id"])
    refused = api.post("/api/sdk/session", content=f'{{"token": "{token}"}}', headers={"Origin": OTHER_SITE})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert api.post("/api/sdk/session", json={"token": token}).status_code == 403  # no Origin at all
    view = api.post("/api/sdk/session", content=f'{{"token": "{token}"}}',
                    headers={"Origin": SITE, "Content-Type": "text/plain"})
    assert view.status_code == 200, view.text
    assert view.headers["access-control-allow-origin"] == SITE
    body = view.json()
    assert body["status"] == "not_started" and body["consent"] and "recorder" not in body
    start = {"token": token, "consent": "\n".join(body["consent"]), "device": {"ok": True, "camera": "fake"},
             "clock_offset_ms": 12}
    wrong_terms = api.post("/api/sdk/start", json={**start, "consent": "other terms"}, headers={"Origin": SITE})
    assert wrong_terms.status_code == 409 and _row(created["id"])[1].status == AttemptStatus.not_started
    no_camera = api.post("/api/sdk/start", json={**start, "device": {"ok": False}}, headers={"Origin": SITE})
    assert no_camera.status_code == 409
    started = api.post("/api/sdk/start", json=start, headers={"Origin": SITE})
    assert started.status_code == 200, started.text
    recorder = started.json()["recorder"]
    _, attempt = _row(created["id"])
    assert attempt.status == AttemptStatus.in_progress and recorder["attemptId"] == attempt.id
    assert recorder["uploadToken"] and recorder["streams"] == ["camera"] and recorder["chunkIntervalS"] > 0
    with session_scope() as db:
        kinds = set(db.exec(select(ProctoringEvent.kind).where(ProctoringEvent.attempt_id == attempt.id)))
    assert {"consent_accepted", "device_check_passed", "exam_started"} <= kinds
    # A reload of the exam page: the same session goes on with a fresh upload token.
    again = api.post("/api/sdk/session", json={"token": _token(api, org_a, created["id"])}, headers={"Origin": SITE})
    assert again.json()["recorder"]["uploadToken"] != recorder["uploadToken"]
    # Later calls go with the recording's upload token (the session token lasts minutes).
    upload = {"token": recorder["uploadToken"]}
    assert api.post("/api/sdk/status", json=upload, headers={"Origin": OTHER_SITE}).status_code == 403
    assert api.post("/api/sdk/status", json={"token": "forged"}, headers={"Origin": SITE}).status_code == 403
    assert api.post("/api/sdk/status", json=upload, headers={"Origin": SITE}).json() == {"status": "in_progress"}
    assert api.post("/api/sdk/end", json=upload, headers={"Origin": OTHER_SITE}).status_code == 403
    assert _row(created["id"])[1].status == AttemptStatus.in_progress
    assert api.post("/api/sdk/end", json=upload, headers={"Origin": SITE}).json() == {"status": "submitted"}
    assert _row(created["id"])[1].status == AttemptStatus.submitted
    assert api.post("/api/sdk/status", json=upload, headers={"Origin": SITE}).json() == {"status": "submitted"}


def test_bad_and_expired_sdk_tokens_are_refused(api, org_a):
    created = _create(api, org_a)
    token = _token(api, org_a, created["id"])
    public_id, expires, mac = token.split(".")
    for bad in (f"{public_id}.{int(expires) + 60}.{mac}", "nonsense", f"ses_{'0' * 24}.{expires}.{mac}"):
        assert api.post("/api/sdk/session", json={"token": bad}, headers={"Origin": SITE}).status_code == 403
    session, _ = _row(created["id"])
    stale, _ = sdk_sessions.sdk_token(session, now=utcnow() - sdk_sessions.SDK_TOKEN_TTL - timedelta(seconds=1))
    expired = api.post("/api/sdk/session", json={"token": stale}, headers={"Origin": SITE})
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    assert api.post("/api/sdk/session", content=b"{", headers={"Origin": SITE}).status_code == 400
    assert api.post("/api/sdk/session", json={"token": 5}, headers={"Origin": SITE}).status_code == 400


def test_the_sdk_is_one_module_any_site_may_load(api):
    response = api.get("/sdk/proctor.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "export {" in response.text and "mount" in response.text
    # Bundled: no import is left for the browser to resolve.
    assert "$/public" not in response.text and "\nimport " not in response.text


def test_allowed_origins_are_plain_origins(demo_db):
    with session_scope() as db:
        organisation = organisations.ensure_organisation(db, "origins-test")
        changed = organisations.set_allowed_origins(db, None, organisation.id, "HTTPS://A.example http://b.example:8080")
        assert changed.allowed_origins == ["https://a.example", "http://b.example:8080"]
        for bad in ("https://a.example/path", "a.example", "ftp://a.example", "javascript:alert(1)"):
            with pytest.raises(organisations.OrganisationError):
                organisations.set_allowed_origins(db, None, organisation.id, bad)


def test_the_cli_sets_an_organisations_origins(demo_db):
    done = subprocess.run([sys.executable, "-m", "proctor_app", "organisations", "set-origins", "cli-origins",
                           "https://lms.example.org"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with session_scope() as db:
        assert organisations.organisation_by_slug(db, "cli-origins").allowed_origins == ["https://lms.example.org"]
    refused = subprocess.run([sys.executable, "-m", "proctor_app", "organisations", "set-origins", "cli-origins",
                              "https://lms.example.org/path"], capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "Nothing changed" in refused.stderr


def test_organisations_origins_extend_the_cors_grant(org_a, monkeypatch):
    from proctor_app import cors

    monkeypatch.setattr(cors, "ORGANISATION_ORIGINS_TTL_S", 0)
    allowed = cors.cors_allowed_origins(("https://install.example",), "")
    assert "https://install.example" in allowed and SITE in allowed
    assert OTHER_SITE not in allowed and "*" not in allowed and SITE + "/path" not in allowed
    # What the state socket gets: the configured list alone.
    assert list(allowed) == ["https://install.example"]
