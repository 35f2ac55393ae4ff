"""Recorded media over HTTP against the running app: byte ranges, content types, signed links,
roles, and the audit log."""

import time

import httpx
import pytest
from sqlmodel import select

from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.playback.links import recording_link, snapshot_link
from proctor_app.models import AuditLog, RecordingStatus
from tests.support.factories import user_id
from tests.support.review_media import make_review_attempt

STAFF = ["supervisor@example.com", "proctor@example.com", "admin@example.com"]
CANDIDATE = "alice@example.com"


@pytest.fixture(scope="module")
def attempt(app_server):
    return make_review_attempt()


@pytest.fixture(scope="module")
def tokens(app_server):
    return {email: sessions.login(email, DEMO_PASSWORD)[0] for email in [*STAFF, CANDIDATE]}


@pytest.fixture
def client_for(app_server, tokens):
    clients = []

    def make(email: str | None) -> httpx.Client:
        cookies = {SESSION_COOKIE: tokens[email]} if email else {}
        client = httpx.Client(base_url=app_server.url, cookies=cookies, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _video(email: str, attempt, **kw) -> str:
    return recording_link(user_id(email), attempt.attempt_id, "camera", "video", **kw)


def _audit_rows(action: str, target: str, email: str) -> list[AuditLog]:
    with session_scope() as db:
        return db.exec(select(AuditLog).where(AuditLog.action == action, AuditLog.target == target,
                                              AuditLog.user_id == user_id(email))).all()


def test_whole_file_with_type_and_length(client_for, attempt):
    data = attempt.camera_mp4.read_bytes()
    response = client_for("supervisor@example.com").get(_video("supervisor@example.com", attempt))
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert "no-store" in response.headers["cache-control"]


@pytest.mark.parametrize("header, first, last", [
    ("bytes=0-99", 0, 99),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=500-", 500, None),          # open range: to the end
    ("bytes=-700", -700, None),         # suffix range: the last 700 bytes
    ("bytes=0-99999999", 0, None),      # a last byte past the end is cut to the end
    ("bytes=-99999999", 0, None),       # a suffix longer than the file is the whole file
])
def test_ranges_are_byte_exact(client_for, attempt, header, first, last):
    data = attempt.camera_mp4.read_bytes()
    size = len(data)
    start = first if first >= 0 else size + first
    end = size - 1 if last is None else last
    response = client_for("proctor@example.com").get(_video("proctor@example.com", attempt),
                                                      headers={"Range": header})
    assert response.status_code == 206
    assert response.content == data[start:end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=10-5", "bytes={size}-", "bytes={size}-{size}", "bytes=-0",
                                    "bytes=abc", "bytes=-", "bytes= 1-2x", "bytes 0-10", "bytes=0-1,x"])
def test_unsatisfiable_or_malformed_ranges_get_416(client_for, attempt, header):
    size = attempt.camera_mp4.stat().st_size
    response = client_for("admin@example.com").get(_video("admin@example.com", attempt),
                                                   headers={"Range": header.format(size=size)})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.content == b""


def test_other_units_several_ranges_and_stale_if_range_get_the_whole_file(client_for, attempt):
    data = attempt.camera_mp4.read_bytes()
    client = client_for("supervisor@example.com")
    url = _video("supervisor@example.com", attempt)
    for headers in ({"Range": "items=0-5"}, {"Range": "bytes=0-5,10-20"},
                    {"Range": "bytes=0-5", "If-Range": '"another-version"'}):
        response = client.get(url, headers=headers)
        assert (response.status_code, response.content) == (200, data), headers
    etag = client.get(url, headers={"Range": "bytes=0-0"}).headers["etag"]
    matching = client.get(url, headers={"Range": "bytes=0-5", "If-Range": etag})
    assert (matching.status_code, matching.content) == (206, data[:6])


def test_head_answers_headers_only(client_for, attempt):
    response = client_for("supervisor@example.com").head(_video("supervisor@example.com", attempt),
                                                          headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.headers["content-range"].startswith("bytes 10-19/")
    assert response.content == b""


def test_images_have_their_content_types(client_for, attempt):
    email = "supervisor@example.com"
    client, me = client_for(email), user_id(email)
    for link, path in [(recording_link(me, attempt.attempt_id, "camera", "poster"), attempt.poster),
                       (recording_link(me, attempt.attempt_id, "camera", "sprite"), attempt.sprite),
                       (snapshot_link(me, attempt.attempt_id, 1), attempt.snapshots[1])]:
        response = client.get(link)
        assert response.status_code == 200, link
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content == path.read_bytes()


def test_links_and_headers_do_not_expose_storage_paths(client_for, attempt):
    email = "supervisor@example.com"
    link = _video(email, attempt)
    response = client_for(email).get(link, headers={"Range": "bytes=0-0"})
    assert "processed" not in link and ".mp4" not in link
    assert all("processed" not in value and "storage" not in value for value in response.headers.values())


@pytest.mark.parametrize("email", STAFF)
def test_every_staff_role_may_view_and_download(client_for, attempt, email):
    client = client_for(email)
    assert client.get(_video(email, attempt), headers={"Range": "bytes=0-9"}).status_code == 206
    download = client.get(_video(email, attempt, download=True))
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="attempt-{attempt.attempt_id}-camera.mp4"'


def _all_links(email: str, attempt) -> list[str]:
    me = user_id(email)
    return [recording_link(me, attempt.attempt_id, "camera", asset) for asset in ("video", "poster", "sprite")] + [
        recording_link(me, attempt.attempt_id, "camera", "video", download=True),
        snapshot_link(me, attempt.attempt_id, 0)]


def test_anonymous_and_candidates_are_refused_everywhere(client_for, attempt):
    before = _media_audit_count()
    anonymous, candidate = client_for(None), client_for(CANDIDATE)
    # Even links signed for them (or for staff) do not help.
    for link in _all_links("supervisor@example.com", attempt) + _all_links(CANDIDATE, attempt):
        assert anonymous.get(link).status_code == 401, link
        assert candidate.get(link).status_code == 403, link
    # A revoked session is anonymous again.
    token = sessions.login("proctor@example.com", DEMO_PASSWORD)[0]
    sessions.logout(token)
    with httpx.Client(base_url=anonymous.base_url, cookies={SESSION_COOKIE: token}) as revoked:
        assert revoked.get(_video("proctor@example.com", attempt)).status_code == 401
    assert _media_audit_count() == before


def _media_audit_count() -> int:
    with session_scope() as db:
        return len(db.exec(select(AuditLog.id).where(
            AuditLog.action.in_(["media_viewed", "media_downloaded"]))).all())


def test_tampered_foreign_and_expired_links_are_refused(client_for, attempt):
    email = "supervisor@example.com"
    client = client_for(email)
    good = _video(email, attempt)
    path, query = good.split("?")
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    bad = {
        "other attempt": good.replace(f"/{attempt.attempt_id}/", f"/{attempt.attempt_id + 1}/"),
        "other stream": good.replace("/camera/", "/screen/"),
        "longer life": f"{path}?exp={int(params['exp']) + 3600}&sig={params['sig']}",
        "changed signature": f"{path}?exp={params['exp']}&sig={params['sig'][:-2]}AA",
        "no signature": f"{path}?exp={params['exp']}",
        "no expiry": f"{path}?sig={params['sig']}",
        "view link as download": good + "&download=1",
        "link made for the proctor": _video("proctor@example.com", attempt),
        "expired": _video(email, attempt, now=time.time() - 5 * 3600),
    }
    for name, link in bad.items():
        response = client.get(link)
        assert response.status_code == 403, name
    assert "expired" in client.get(bad["expired"]).text
    assert client.get(good).status_code == 200


def test_missing_media_is_404_and_deleted_media_410(client_for, attempt, app_server):
    email = "admin@example.com"
    client, me = client_for(email), user_id(email)
    assert client.get(recording_link(me, attempt.attempt_id, "screen", "poster")).status_code == 404
    assert client.get(recording_link(me, attempt.attempt_id, "camera", "thumbnail")).status_code == 404
    assert client.get(recording_link(me, attempt.attempt_id, "webcam", "video")).status_code == 404
    assert client.get(recording_link(me, attempt.attempt_id, "screen", "poster", download=True)).status_code == 404
    assert client.get(snapshot_link(me, attempt.attempt_id, 99)).status_code == 404
    assert client.get(recording_link(me, 10**9, "camera", "video")).status_code == 404
    expired = make_review_attempt(status=RecordingStatus.expired, ended_days_ago=40)
    response = client.get(recording_link(me, expired.attempt_id, "camera", "video"))
    assert response.status_code == 410
    assert "retention" in response.text


def test_views_are_audited_once_per_window_and_downloads_every_time(client_for, attempt):
    email = "proctor@example.com"
    client = client_for(email)
    fresh = make_review_attempt()
    target = f"attempt:{fresh.attempt_id}/camera/video"
    link = _video(email, fresh)
    for header in ("bytes=0-", "bytes=1000-", "bytes=-100"):  # what a seeking <video> sends
        assert client.get(link, headers={"Range": header}).status_code == 206
    views = _audit_rows("media_viewed", target, email)
    assert len(views) == 1
    assert views[0].at is not None
    download = _video(email, fresh, download=True)
    client.get(download)
    client.get(download, headers={"Range": "bytes=5000-"})  # a resumed download is the same one
    client.get(download)
    assert len(_audit_rows("media_downloaded", target, email)) == 2
    client.get(snapshot_link(user_id(email), fresh.attempt_id, 0))
    assert len(_audit_rows("media_viewed", f"attempt:{fresh.attempt_id}/snapshot/0", email)) == 1
    # Another reviewer's view is their own entry.
    client_for("supervisor@example.com").get(_video("supervisor@example.com", fresh))
    assert len(_audit_rows("media_viewed", target, "supervisor@example.com")) == 1


def test_proctors_get_only_their_assigned_exams_media(client_for):
    other = make_review_attempt(assign_proctor=False)
    proctor, supervisor = "proctor@example.com", "supervisor@example.com"
    refused = client_for(proctor).get(_video(proctor, other))
    assert refused.status_code == 403
    assert client_for(proctor).get(snapshot_link(user_id(proctor), other.attempt_id, 0)).status_code == 403
    assert client_for(supervisor).get(_video(supervisor, other)).status_code == 200
    assert _audit_rows("media_viewed", f"attempt:{other.attempt_id}/camera/video", proctor) == []
