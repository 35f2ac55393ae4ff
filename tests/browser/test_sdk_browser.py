"""The candidate side of API sessions as an integrator uses it, against the running app: another
site's exam page records with /sdk/proctor.js, a site not allowed is refused, and the launch link
opens a proctoring page that is one-time, survives a reload and returns to the integrator."""

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin

import av
import httpx
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import ApiSession, Attempt, AttemptStatus, ProctoringEvent
from proctor_app.services import organisations
from tests.support.api import make_caller, session_body
from tests.support.polling import wait_for

pytestmark = pytest.mark.browser

RECORD_S = 20
# Another site's exam page: it loads the recorder from the app and mounts it with the token.
EXAM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Partner exam</title></head><body>
<h1>Partner exam</h1><div id="proctoring"></div>
<script type="module">
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const { mount } = await import("{app}/sdk/proctor.js");
  window.proctor = mount(document.getElementById("proctoring"), { token });
</script></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def __init__(self, *args, app_url: str, **kwargs):
        self.app_url = app_url
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = EXAM_PAGE.replace("{app}", self.app_url).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def other_site(app_url: str) -> Iterator[str]:
    """A small web server on another port (another origin) serving the partner's exam page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Page, app_url=app_url))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _caller(origins: list[str]):
    with session_scope() as db:
        caller = make_caller(db)
        organisations.set_allowed_origins(db, None, caller.organisation_id, " ".join(origins))
        return caller


def _create(api: httpx.Client, caller, **fields) -> dict:
    response = api.post("/api/v1/sessions", json=session_body(
        settings={"camera": True, "live": False, "snapshots_interval_s": 10, "duration_minutes": 30}, **fields),
        headers=caller.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _attempt(public_id: str) -> Attempt:
    with session_scope() as db:
        session = db.exec(select(ApiSession).where(ApiSession.public_id == public_id)).one()
        return db.get(Attempt, session.attempt_id)


@pytest.fixture
def api(app_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        yield client


def test_another_sites_page_records_a_session_with_the_sdk(app_server, context, api):
    with other_site(app_server.url) as site, other_site(app_server.url) as stranger:
        caller, other_org = _caller([site]), _caller([stranger])
        created = _create(api, caller)
        token = api.post(f"/api/v1/sessions/{created['id']}/token", headers=caller.headers).json()["token"]

        page = context.new_page()
        page.goto(f"{site}/#token={token}")
        page.locator("#proctor-consent-checkbox").check()
        page.locator("#proctor-consent-accept").click()
        expect(page.locator("#proctor-device-status")).to_have_text("Camera and microphone work.")
        page.locator("#proctor-start").click()
        expect(page.locator("#proctor-indicator")).to_have_text("● Recording")
        page.wait_for_timeout(RECORD_S * 1000)  # recording, not an assertion on time

        # The integrator ends the session: the page notices, stops and uploads the rest.
        ended = api.post(f"/api/v1/sessions/{created['id']}/end", headers=caller.headers)
        assert ended.status_code == 200 and ended.json()["status"] == "submitted"
        expect(page.locator("#proctor-indicator")).to_have_text("Recording uploaded", timeout=60_000)

        def processed():
            detail = api.get(f"/api/v1/sessions/{created['id']}", headers=caller.headers).json()
            streams = [s for s in detail["streams"] if s["status"] in ("completed", "partial")]
            return streams[0] if streams else None

        stream = wait_for(processed, timeout=180, what="the recording processed")
        video = api.get(urljoin(app_server.url, stream["playback"]["mp4_url"]))
        assert video.status_code == 200
        with av.open(io.BytesIO(video.content)) as container:
            frames = sum(1 for _ in container.decode(container.streams.video[0]))
            duration_s = float(container.duration / av.time_base)
        assert frames > 0 and duration_s >= RECORD_S - 5, duration_s
        print(f"SDK recording: MP4 {duration_s:.1f} s, {frames} frames, {len(video.content)} bytes")
        with session_scope() as db:
            kinds = set(db.exec(select(ProctoringEvent.kind).where(
                ProctoringEvent.attempt_id == _attempt(created["id"]).id)))
        assert {"consent_accepted", "exam_started", "recording_started", "segment_started",
                "uploads_flushed"} <= kinds

        # A key of another organisation finds none of it.
        for method, path in (("GET", ""), ("POST", "/token"), ("POST", "/end"), ("GET", "/events"),
                             ("DELETE", "/media")):
            answer = api.request(method, f"/api/v1/sessions/{created['id']}{path}", headers=other_org.headers)
            assert answer.status_code == 404, (method, path, answer.text)

        # A page of a site the organisation did not list is refused and records nothing.
        refused = _create(api, caller)
        token = api.post(f"/api/v1/sessions/{refused['id']}/token", headers=caller.headers).json()["token"]
        page.goto(f"{stranger}/#token={token}")
        expect(page.locator("#proctor-error")).to_be_visible()
        expect(page.locator("#proctor-consent")).to_have_count(0)
        assert _attempt(refused["id"]).status == AttemptStatus.not_started


def test_the_launch_link_opens_a_proctoring_page_once(app_server, browser, context, api):
    with other_site(app_server.url) as site:
        caller = _caller([])
        created = _create(api, caller, return_url=f"{site}/back")
        page = context.new_page()
        page.goto(created["candidate_url"])
        page.locator("#consent-checkbox").click()
        page.locator("#consent-accept").click()
        expect(page.locator("#device-ok")).to_be_visible()
        page.locator("#start-exam").click()
        expect(page.locator("#session-running")).to_be_visible()
        expect(page.locator("#recording-indicator")).to_contain_text("Recording")
        expect(page.locator("#question-prompt")).to_have_count(0)

        # A reload continues the same session; the link itself works only once.
        page.reload()
        expect(page.locator("#session-running")).to_be_visible()
        expect(page.locator("#recording-indicator")).to_contain_text("Recording")
        stranger = browser.new_context(base_url=app_server.url)
        try:
            again = stranger.new_page()
            again.goto(created["candidate_url"])
            expect(again.locator("#launch-refused")).to_contain_text("already used")
        finally:
            stranger.close()
        page.wait_for_timeout(5000)  # a few chunks, so the end has something to flush

        # The integrator ends the session: the page finishes its uploads and goes back.
        assert api.post(f"/api/v1/sessions/{created['id']}/end", headers=caller.headers).status_code == 200
        page.wait_for_url(f"{site}/back", timeout=60_000)
        with session_scope() as db:
            kinds = set(db.exec(select(ProctoringEvent.kind).where(
                ProctoringEvent.attempt_id == _attempt(created["id"]).id)))
        assert {"consent_accepted", "exam_started", "segment_started", "uploads_flushed"} <= kinds
