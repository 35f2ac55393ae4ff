"""The media side of /api/v1: playback links signed for a key, erasure through retention's
crash-safe deletion and audit (409 under a legal hold), and the api-keys command."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from proctor_app.api import build_api
from proctor_app.db import session_scope
from proctor_app.media.storage import storage
from proctor_app.models import ApiKey, Attempt, AuditLog, Organisation, utcnow
from proctor_app.services import api_keys
from tests.support.api import make_caller, wrap_attempt
from tests.support.polling import wait_for
from tests.support.retention_media import make_media_attempt
from tests.support.server import ROOT


@pytest.fixture(scope="module")
def api(demo_db):
    with TestClient(build_api(), base_url="http://proctor.test") as client:
        yield client


def _session_with_media(caller, **media):
    with session_scope() as db:
        made = make_media_attempt(db, ended_ago=timedelta(hours=1), now=utcnow(), **media)
        session = wrap_attempt(db, caller.organisation_id, made.attempt_id)
    return session.public_id, made


def test_playback_links_work_for_the_key_alone_and_die_with_it(api, demo_db):
    with session_scope() as db:
        caller = make_caller(db)
        other = make_caller(db)
    public_id, _ = _session_with_media(caller)
    detail = api.get(f"/api/v1/sessions/{public_id}", headers=caller.headers).json()
    (camera,) = detail["streams"]
    assert camera["status"] == "completed" and camera["size"] == 300
    mp4 = api.get(camera["playback"]["mp4_url"])  # no cookie, no key header: the link is the grant
    assert mp4.status_code == 200 and len(mp4.content) == 300
    # Someone else's key id in the link breaks the signature.
    forged = camera["playback"]["mp4_url"].replace("key=", "key=9")
    assert api.get(forged).status_code == 403
    assert api.get(f"/api/v1/sessions/{public_id}", headers=other.headers).status_code == 404
    with session_scope() as db:
        audited = db.exec(select(AuditLog).where(AuditLog.action == "media_viewed",
                                                 AuditLog.target.startswith("attempt:"))
                          .order_by(AuditLog.id.desc())).first()
        assert audited.data.get("api_key") is not None and audited.user_id is None
        key = db.exec(select(ApiKey).where(ApiKey.organisation_id == caller.organisation_id)).one()
        api_keys.revoke_key(db, key.id, None)
    assert api.get(camera["playback"]["poster_url"]).status_code == 404


def test_a_key_without_recordings_read_gets_no_links(api, demo_db):
    with session_scope() as db:
        caller = make_caller(db, ["sessions:read"])
    public_id, _ = _session_with_media(caller)
    (camera,) = api.get(f"/api/v1/sessions/{public_id}", headers=caller.headers).json()["streams"]
    assert camera["playback"] is None


def test_erasure_deletes_the_files_with_an_audit_row_and_is_idempotent(api, demo_db):
    with session_scope() as db:
        caller = make_caller(db)
    public_id, made = _session_with_media(caller)
    assert all(storage.absolute(f).exists() for f in made.files)
    response = api.delete(f"/api/v1/sessions/{public_id}/media", headers=caller.headers)
    assert response.status_code == 200, response.text
    assert response.json()["deleted_now"] is True and response.json()["media_deleted_at"]
    assert not any(storage.absolute(f).exists() for f in made.files)
    with session_scope() as db:
        audit = db.exec(select(AuditLog).where(AuditLog.action == "media_deleted",
                                               AuditLog.target == f"attempt:{made.attempt_id}")).one()
        assert audit.data["session"] == public_id and audit.data["files"] == len(made.files)
    again = api.delete(f"/api/v1/sessions/{public_id}/media", headers=caller.headers)
    assert again.status_code == 200 and again.json()["deleted_now"] is False
    (camera,) = api.get(f"/api/v1/sessions/{public_id}", headers=caller.headers).json()["streams"]
    assert camera["status"] == "expired" and camera["playback"] is None


def test_erasure_under_legal_hold_is_409_and_deletes_nothing(api, demo_db):
    with session_scope() as db:
        caller = make_caller(db)
    public_id, made = _session_with_media(caller, hold=True)
    response = api.delete(f"/api/v1/sessions/{public_id}/media", headers=caller.headers)
    assert response.status_code == 409 and "legal hold" in response.json()["detail"]
    assert all(storage.absolute(f).exists() for f in made.files)
    with session_scope() as db:
        assert db.get(Attempt, made.attempt_id).media_expired_at is None


def test_the_cli_prints_a_working_key_alone_on_the_last_line(api, demo_db):
    result = subprocess.run([sys.executable, "-m", "proctor_app", "api-keys", "create", "--org", "cli-made-org",
                             "--label", "LMS", "--scope", "sessions:read"],
                            cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    key = result.stdout.rstrip("\n").rsplit("\n", 1)[-1]
    assert key.startswith("pk_") and " " not in key
    assert api.get("/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    _problem_status = api.post("/api/v1/sessions", json={}, headers={"Authorization": f"Bearer {key}"}).status_code
    assert _problem_status == 403
    with session_scope() as db:
        assert db.exec(select(Organisation).where(Organisation.slug == "cli-made-org")).one()
    listed = subprocess.run([sys.executable, "-m", "proctor_app", "api-keys", "list", "--org", "cli-made-org"],
                            cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120)
    assert key[:15] in listed.stdout and key not in listed.stdout
    revoked = subprocess.run([sys.executable, "-m", "proctor_app", "api-keys", "revoke", key[:15]],
                             cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120)
    assert revoked.returncode == 0
    # Revoked in another process: this one refuses the key within its cache's bound.
    wait_for(lambda: api.get("/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}).status_code == 401,
             timeout=api_keys.KEY_CACHE_TTL.total_seconds() + 5, what="the revoked key refused")
