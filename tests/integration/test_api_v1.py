"""/api/v1 as an integrator uses it, against the ASGI app (the session's database and storage):
organisations see only their own sessions, scopes and key states are enforced, pages are stable."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select
from starlette.testclient import TestClient

import proctor_app.db
from proctor_app.api import build_api
from proctor_app.db import connection_scope, engine_for, session_scope
from proctor_app.models import ApiKey, ApiSession, Attempt, Exam, Organisation, utcnow
from proctor_app.services import api_keys
from tests.support.api import make_caller, session_body

PROBLEM = "application/problem+json"


def _slug(db, organisation_id: int) -> str:
    return db.get(Organisation, organisation_id).slug


@pytest.fixture(scope="module")
def api(demo_db):
    with TestClient(build_api(), base_url="http://proctor.test") as client:
        yield client


@pytest.fixture
def org_a(demo_db):
    with session_scope() as db:
        return make_caller(db)


@pytest.fixture
def org_b(demo_db):
    with session_scope() as db:
        return make_caller(db)


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


def _create(api, caller, **fields) -> dict:
    response = api.post("/api/v1/sessions", json=session_body(**fields), headers=caller.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_key_creates_gets_lists_and_ends_its_session(api, org_a):
    created = _create(api, org_a, metadata={"course": "chem-101"}, return_url="https://lms.example/back",
                      settings={"camera": True, "screen": True, "live": False, "snapshots_interval_s": 30,
                                "required": False, "duration_minutes": 45})
    assert created["status"] == "not_started"
    assert created["candidate_url"].startswith("http://proctor.test/launch/")
    token = created["candidate_url"].rsplit("/", 1)[1]
    with session_scope() as db:
        row = db.exec(select(ApiSession).where(ApiSession.public_id == created["id"])).one()
        exam = db.get(Exam, db.get(Attempt, row.attempt_id).exam_id)
        # Only the hash of the launch token is stored.
        assert token not in row.launch_token_hash and row.launch_token_hash
        assert (exam.screen_recording, exam.live_video, exam.duration_minutes) == (True, False, 45)
        assert exam.organisation_id == org_a.organisation_id and exam.api_session

    detail = api.get(f"/api/v1/sessions/{created['id']}", headers=org_a.headers).json()
    assert detail["metadata"] == {"course": "chem-101"}
    assert detail["settings"]["snapshots_interval_s"] == 30 and detail["settings"]["required"] is False
    assert detail["events"] == {"info": 0, "warning": 0, "critical": 0}
    assert detail["review"] == {"status": "not_reviewed", "notes": ""}

    listed = api.get("/api/v1/sessions", headers=org_a.headers).json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]

    ended = api.post(f"/api/v1/sessions/{created['id']}/end", headers=org_a.headers)
    assert ended.status_code == 200 and ended.json()["status"] == "submitted"
    again = api.post(f"/api/v1/sessions/{created['id']}/end", headers=org_a.headers)
    assert again.json() == ended.json()
    events = api.get(f"/api/v1/sessions/{created['id']}/events", headers=org_a.headers).json()
    assert [(e["kind"], e["text"]) for e in events["items"]] == [("ended_by_api", "Ended through the API")]
    assert api.get("/api/v1/sessions?status=submitted", headers=org_a.headers).json()["items"][0]["id"] == created["id"]
    assert api.get("/api/v1/sessions?status=in_progress", headers=org_a.headers).json()["items"] == []


def test_another_organisation_gets_404_for_all_of_it(api, org_a, org_b):
    created = _create(api, org_a)
    base = f"/api/v1/sessions/{created['id']}"
    for method, path in (("GET", base), ("POST", f"{base}/end"), ("GET", f"{base}/events"),
                         ("DELETE", f"{base}/media")):
        _problem(api.request(method, path, headers=org_b.headers), 404)
    assert api.get("/api/v1/sessions", headers=org_b.headers).json()["items"] == []
    # Nothing changed for its owner.
    assert api.get(base, headers=org_a.headers).json()["status"] == "not_started"


def test_the_same_external_id_answers_the_same_session(api, org_a, org_b):
    first = _create(api, org_a, external_id="exam-42/alice")
    again = api.post("/api/v1/sessions", json=session_body("exam-42/alice"), headers=org_a.headers)
    assert again.status_code == 200 and again.json() == first
    # External ids are per organisation.
    other = _create(api, org_b, external_id="exam-42/alice")
    assert other["id"] != first["id"]


def test_scopes_and_key_states(api, org_a, demo_db):
    created = _create(api, org_a)
    with session_scope() as db:
        reader = make_caller(db, ["sessions:read"])
    _problem(api.post("/api/v1/sessions", json=session_body(), headers=reader.headers), 403)
    with session_scope() as db:
        no_delete = make_caller(db, ["sessions:read", "sessions:write"],
                                slug=_slug(db, org_a.organisation_id))
        revoked = make_caller(db, slug=_slug(db, org_a.organisation_id), revoked_at=utcnow())
        expired = make_caller(db, slug=_slug(db, org_a.organisation_id), expires_at=utcnow() - timedelta(seconds=1))
    path = f"/api/v1/sessions/{created['id']}"
    assert api.get(path, headers=no_delete.headers).status_code == 200
    _problem(api.delete(f"{path}/media", headers=no_delete.headers), 403)
    for caller in (revoked, expired):
        response = api.get(path, headers=caller.headers)
        _problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    _problem(api.get(path), 401)
    _problem(api.get(path, headers={"Authorization": f"Bearer {org_a.key}x"}), 401)
    _problem(api.get(path, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401)
    assert api.get(path, headers={"X-API-TOKEN": org_a.key}).status_code == 200



def test_rotation_keeps_the_old_key_for_the_overlap_and_revocation_ends_it(api, org_a):
    with session_scope() as db:
        old = db.exec(select(ApiKey).where(ApiKey.organisation_id == org_a.organisation_id)).one()
        new, raw = api_keys.rotate_key(db, old.id, org_a.organisation_id)
        assert old.replaced_by == new.id
        assert old.expires_at <= utcnow() + api_keys.ROTATION_OVERLAP
    assert api.get("/api/v1/sessions", headers=org_a.headers).status_code == 200
    new_headers = {"Authorization": f"Bearer {raw}"}
    assert api.get("/api/v1/sessions", headers=new_headers).status_code == 200
    with session_scope() as db:
        # Another organisation's admin cannot touch it.
        with pytest.raises(api_keys.ApiKeyError):
            api_keys.revoke_key(db, new.id, org_a.organisation_id + 10_000)
        api_keys.revoke_key(db, new.id, org_a.organisation_id)
    _problem(api.get("/api/v1/sessions", headers=new_headers), 401)


def test_last_use_is_written_at_most_once_a_minute(api, org_a):
    def last_use():
        with session_scope() as db:
            return db.exec(select(ApiKey.last_used_at).where(ApiKey.organisation_id == org_a.organisation_id)).one()

    assert last_use() is None
    api.get("/api/v1/sessions", headers=org_a.headers)
    first = last_use()
    assert first is not None
    api.get("/api/v1/sessions", headers=org_a.headers)
    assert last_use() == first
    with session_scope() as db:
        key = db.exec(select(ApiKey).where(ApiKey.organisation_id == org_a.organisation_id)).one()
        key.last_used_at = first - timedelta(minutes=2)
        db.add(key)
    # The process remembers the key as used at `first` until KEY_CACHE_TTL has passed.
    api_keys.forget_checked_keys()
    api.get("/api/v1/sessions", headers=org_a.headers)
    assert last_use() > first - timedelta(minutes=2)


def test_a_checked_key_is_remembered_for_a_bounded_time(org_a):
    now = utcnow()
    with connection_scope() as conn:
        principal = api_keys.authenticate(conn, org_a.key, now)
    assert api_keys.checked_principal(org_a.key, now + timedelta(seconds=1)) == principal
    # Revoked in another process (a direct write): refused once the bound has passed.
    with session_scope() as db:
        key = db.get(ApiKey, principal.key_id)
        key.revoked_at = now
        db.add(key)
    assert api_keys.checked_principal(org_a.key, now + api_keys.KEY_CACHE_TTL) is None
    with connection_scope() as conn:
        assert api_keys.authenticate(conn, org_a.key, now + api_keys.KEY_CACHE_TTL) is None


def test_revoking_in_this_process_forgets_the_key_at_once(api, org_a):
    assert api.get("/api/v1/sessions", headers=org_a.headers).status_code == 200
    with session_scope() as db:
        key_id = db.exec(select(ApiKey.id).where(ApiKey.organisation_id == org_a.organisation_id)).one()
        api_keys.revoke_key(db, key_id, org_a.organisation_id)
    _problem(api.get("/api/v1/sessions", headers=org_a.headers), 401)


def test_an_expiring_key_is_not_remembered_past_its_expiry(demo_db):
    now = utcnow()
    with session_scope() as db:
        caller = make_caller(db, expires_at=now + timedelta(seconds=2))
    with connection_scope() as conn:
        assert api_keys.authenticate(conn, caller.key, now) is not None
    assert api_keys.checked_principal(caller.key, now + timedelta(seconds=1)) is not None
    assert api_keys.checked_principal(caller.key, now + timedelta(seconds=2)) is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def listing_database(request, monkeypatch):
    """The session's SQLite database, or a PostgreSQL schema of the test's own (the keyset
    cursor is a row comparison there)."""
    if request.param == "postgresql":
        engine = engine_for(request.getfixturevalue("pg_url"))
        monkeypatch.setattr(proctor_app.db, "get_engine", lambda: engine)


def test_pages_neither_repeat_nor_skip_while_sessions_are_added(api, listing_database):
    with session_scope() as db:
        org_a = make_caller(db)
    made = [_create(api, org_a)["id"] for _ in range(7)]
    seen, cursor = [], None
    while True:
        query = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/sessions", params=query, headers=org_a.headers).json()
        seen += [item["id"] for item in page["items"]]
        _create(api, org_a)  # a newer session arrives between pages
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


def _sessions_in_db() -> int:
    with session_scope() as db:
        return db.exec(select(func.count()).select_from(ApiSession)).one()


MALFORMED = [
    ("POST", "/api/v1/sessions", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("POST", "/api/v1/sessions", {"content": b"[]", "headers": {"content-type": "application/json"}}, 422),
    ("POST", "/api/v1/sessions", {"content": b'{"external_id": "x"}', "headers": {"content-type": "text/plain"}}, 415),
    ("POST", "/api/v1/sessions", {"content": b'{"external_id": "x"}'}, 415),
    ("POST", "/api/v1/sessions", {"json": {"external_id": "x"}}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(surprise=1)}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(external_id="")}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(external_id="a\x00b")}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(external_id=7)}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(settings={"duration_minutes": "60"})}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(settings={"duration_minutes": 0})}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(settings={"camera": "yes"})}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(metadata={"x": "y" * 20_000})}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(metadata=[1])}, 422),
    ("POST", "/api/v1/sessions", {"json": session_body(return_url="javascript:alert(1)")}, 422),
    ("POST", "/api/v1/sessions", {"json": {**session_body(), "candidate": {"name": "A", "email": "no-at"}}}, 422),
    ("GET", "/api/v1/sessions?limit=101", {}, 422),
    ("GET", "/api/v1/sessions?limit=0", {}, 422),
    ("GET", "/api/v1/sessions?limit=ten", {}, 422),
    ("GET", "/api/v1/sessions?status=done", {}, 422),
    ("GET", "/api/v1/sessions?created_after=2026-01-01T00:00:00", {}, 422),
    ("GET", "/api/v1/sessions?created_after=yesterday", {}, 422),
    ("GET", "/api/v1/sessions?created_after=0001-01-01T00:00:00%2B05:00", {}, 422),
    ("GET", "/api/v1/sessions?cursor=not-a-cursor", {}, 422),
    ("GET", "/api/v1/sessions?cursor=WzFd", {}, 422),
    # Well-formed JSON cursors with values the database could not take: naive time, id past int4.
    ("GET", "/api/v1/sessions?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgMV0", {}, 422),
    ("GET", "/api/v1/sessions?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgOTk5OTk5OTk5OTk5XQ", {}, 422),
    ("GET", "/api/v1/sessions/ses_nope", {}, 422),
    ("GET", "/api/v1/sessions/ses_" + "0" * 24, {}, 404),
    ("POST", "/api/v1/sessions/ses_" + "0" * 24 + "/end", {}, 404),
    ("GET", "/api/v1/nowhere", {}, 404),
    ("PUT", "/api/v1/sessions", {}, 405),
    ("PATCH", "/api/v1/sessions/ses_" + "0" * 24, {}, 405),
]


@pytest.mark.parametrize("method,path,extra,status", MALFORMED)
def test_every_malformed_request_is_a_4xx_problem_and_changes_nothing(api, org_a, method, path, extra, status):
    before = _sessions_in_db()
    extra = dict(extra)
    headers = org_a.headers | extra.pop("headers", {})
    _problem(api.request(method, path, headers=headers, **extra), status)
    assert _sessions_in_db() == before


def test_a_405_names_an_allowed_method(api, org_a):
    # FastAPI names the methods of the first route of the path only (here POST, not GET too).
    response = api.put("/api/v1/sessions", headers=org_a.headers)
    assert "POST" in response.headers["allow"]


def test_a_bad_key_is_refused_before_the_body_is_read(api):
    def body():
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    response = api.post("/api/v1/sessions", content=body(), headers={"Authorization": "Bearer pk_000000000000_x",
                                                                      "content-type": "application/json"})
    _problem(response, 401)


def test_openapi_document_and_docs_page(api):
    document = api.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/sessions", "/sessions/{session_id}", "/sessions/{session_id}/end",
                                      "/sessions/{session_id}/events", "/sessions/{session_id}/media",
                                      "/sessions/{session_id}/token", "/sessions/{session_id}/live-viewer",
                                      "/webhooks", "/webhooks/{endpoint_id}", "/webhooks/{endpoint_id}/rotate-secret",
                                      "/metrics"}
    create = document["paths"]["/sessions"]["post"]
    assert create["x-required-scope"] == "sessions:write"
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SessionCreate")
    assert "Problem" in document["components"]["schemas"]
    page = api.get("/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/sessions/{session_id}/media" in page.text
    # Nothing loaded from elsewhere (no CDN), no script at all.
    assert "<script" not in page.text and not re.search(r"""(src|href)=["']?https?:""", page.text)
