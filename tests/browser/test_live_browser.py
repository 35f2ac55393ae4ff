"""Live proctoring against the running app: Chromium candidate (fake camera) -> server relay ->
Chromium proctor; reconnection, leaving, a grid of 25 tiles, the exam page with live video on
and off. (The routes' refusals, without a browser: tests/integration/test_live_api.py.)

Each test makes its own exam, candidate and proctors, so the proctor's grid shows only its tile.
"""

import asyncio
import threading
import time
from contextlib import contextmanager

import httpx
import psutil
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import User
from proctor_app.services.live_views import attempt_views
from tests.support.live_clients import EncodedSource, Publisher, encode_clip
from tests.support.live_exams import candidate_attempt_id, live_events, make_live_exam, publish_url
from tests.support.live_pages import (
    AUDIO_PACKETS,
    FRAMES_DECODED,
    open_grid,
    start_publishing,
    status_of,
    take_exam_until_started,
    tile_video_playing,
)
from tests.support.pages import login, sign_in
from tests.support.server import relay_processes


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


@pytest.mark.browser
def test_proctor_watches_the_candidate_live_and_a_late_viewer_sees_a_picture_at_once(new_context):
    live = make_live_exam(screen=True)
    start_publishing(new_context, live, screen=True)
    proctor = open_grid(new_context, live.proctors[0])
    expect(status_of(proctor, live.attempt_id)).to_have_attribute("data-status", "live")
    tile_video_playing(proctor, live.attempt_id)
    video = f"#tile-{live.attempt_id} video"
    played, decoded = proctor.eval_on_selector(video, "v => v.currentTime"), proctor.evaluate(FRAMES_DECODED)
    time.sleep(1.5)
    assert proctor.eval_on_selector(video, "v => v.currentTime") > played
    assert proctor.evaluate(FRAMES_DECODED) > decoded > 0
    # The tile is the low-resolution layer.
    assert proctor.eval_on_selector(video, "v => v.videoWidth") <= 320

    # The focused view: full resolution camera, the screen share and the attempt's event feed.
    proctor.click(f"#tile-{live.attempt_id}")
    proctor.wait_for_function("document.querySelector('#focus-camera')?.videoWidth > 0")
    proctor.wait_for_function("document.querySelector('#focus-screen')?.videoWidth > 320")
    expect(proctor.locator("#focus-events")).to_contain_text("Live video connected")

    # A second proctor opens the grid while the candidate has long been publishing.
    late = open_grid(new_context, live.proctors[1])
    tile_video_playing(late, live.attempt_id)
    waited_ms = late.evaluate("performance.now() - window.__pcs[0].created")
    assert waited_ms < 2000, f"the late viewer waited {waited_ms:.0f} ms for a picture"
    assert live_events(live.attempt_id) == [("live_connected", "")]


@pytest.mark.browser
def test_an_offline_candidate_shows_reconnecting_then_live_again_and_offline_after_leaving(new_context):
    live = make_live_exam()
    candidate_ctx, candidate = start_publishing(new_context, live)
    proctor = open_grid(new_context, live.proctors[0])
    status = status_of(proctor, live.attempt_id)
    expect(status).to_have_attribute("data-status", "live")
    tile_video_playing(proctor, live.attempt_id)

    candidate_ctx.set_offline(True)
    expect(status).to_have_attribute("data-status", "reconnecting", timeout=5000)
    time.sleep(10)
    # Still reconnecting after 10 s: Offline only comes after live_offline_after_s (20 s).
    expect(status).to_have_attribute("data-status", "reconnecting", timeout=1)
    candidate_ctx.set_offline(False)
    # Nobody touches the proctor's page: the status and the picture come back by themselves.
    expect(status).to_have_attribute("data-status", "live", timeout=10000)
    frames = proctor.evaluate(FRAMES_DECODED)
    assert wait_until(lambda: proctor.evaluate(FRAMES_DECODED) > frames + 10, timeout=5)

    candidate.close()  # the candidate leaves the page
    expect(status).to_have_attribute("data-status", "offline", timeout=5000)
    assert wait_until(lambda: len(live_events(live.attempt_id)) == 4, timeout=5)
    assert live_events(live.attempt_id) == [
        ("live_connected", ""), ("live_lost", "no_frames"), ("live_restored", ""),
        ("live_lost", "publisher_left")]


# Video frames decoded by the page's connections made after `since` (performance.now()).
FRAMES_DECODED_SINCE = """async (since) => {
  let frames = 0;
  for (const { pc, created } of window.__pcs) {
    if (created < since || pc.connectionState !== "connected") continue;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded;
    });
  }
  return frames;
}"""


@pytest.mark.browser
def test_a_killed_relay_process_is_replaced_and_both_pages_come_back_by_themselves(new_context, app_server):
    live = make_live_exam()
    start_publishing(new_context, live)
    proctor = open_grid(new_context, live.proctors[0])
    status = status_of(proctor, live.attempt_id)
    expect(status).to_have_attribute("data-status", "live")
    tile_video_playing(proctor, live.attempt_id)

    [(_, pid)] = relay_processes(app_server.proc.pid)
    killed_at = proctor.evaluate("performance.now()")
    psutil.Process(pid).kill()
    # What the relay knew went with it; a new one starts, and nobody touches either page: the
    # candidate's page publishes again, the proctor's views again, the grid says Live again.
    expect(status).to_have_attribute("data-status", "offline", timeout=10000)
    assert wait_until(lambda: [p for _, p in relay_processes(app_server.proc.pid)] not in ([], [pid]), timeout=30)
    expect(status).to_have_attribute("data-status", "live", timeout=60000)
    assert wait_until(lambda: proctor.evaluate(FRAMES_DECODED_SINCE, killed_at) > 10, timeout=60)


@contextmanager
def python_publishers(base_url: str, grants, frames: list[bytes]):
    """Candidates without a browser: aiortc publishers of pre-encoded VP8 (the grid's layer) for
    each (attempt id, token), over the WHIP route, on an event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    publishers = []

    async def start():
        async with httpx.AsyncClient(base_url=base_url) as client:
            for attempt_id, token in grants:
                async def signal(offer: str, attempt_id=attempt_id, token=token) -> str:
                    response = await client.post(
                        f"{publish_url(attempt_id)}?streams=camera_low", content=offer,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"})
                    assert response.status_code == 201, response.text
                    return response.text

                publisher = Publisher({"camera_low": EncodedSource(frames, 15)})
                publishers.append(publisher)
                await publisher.start(signal)

    async def stop():
        for publisher in publishers:
            await publisher.close()

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
        yield
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@pytest.mark.browser
def test_the_grid_plays_25_tiles_at_once(new_context, app_server):
    live = make_live_exam(candidates=25)
    with python_publishers(app_server.url, live.grants, encode_clip(320, 240, 15, seconds=2, bitrate_k=150)):
        proctor = open_grid(new_context, live.proctors[0])
        expect(proctor.locator(".live-status[data-status=live]")).to_have_count(25, timeout=20000)
        videos = "[...document.querySelectorAll('.live-tile video')]"
        proctor.wait_for_function(f"{videos}.filter(v => v.videoWidth > 0).length === 25", timeout=20000)
        played = proctor.evaluate(f"{videos}.map(v => v.currentTime)")
        time.sleep(1.5)
        now = proctor.evaluate(f"{videos}.map(v => v.currentTime)")
        assert sum(b > a for a, b in zip(played, now)) == 25


@pytest.mark.browser
def test_the_exam_page_publishes_while_the_exam_runs(new_context):
    live = make_live_exam(start=False, screen=True)
    candidate = new_context(track_connections=True).new_page()
    take_exam_until_started(candidate, live)
    expect(candidate.locator("#live-status")).to_have_attribute("data-status", "on")
    attempt_id = candidate_attempt_id(live)
    proctor = open_grid(new_context, live.proctors[0])
    expect(status_of(proctor, attempt_id)).to_have_attribute("data-status", "live")
    tile_video_playing(proctor, attempt_id)
    # The screen the recorder shares (one prompt for both) is published too.
    proctor.click(f"#tile-{attempt_id}")
    proctor.wait_for_function("document.querySelector('#focus-screen')?.videoWidth > 320")
    # So is the microphone (recorded in this exam): heard in the focused view, not on the tiles.
    proctor.wait_for_function("document.querySelector('#focus-camera')?.srcObject?.getAudioTracks().length === 1")
    assert proctor.eval_on_selector("#focus-camera", "v => v.muted") is False
    assert proctor.eval_on_selector(f"#tile-{attempt_id} video",
                                    "v => v.muted && v.srcObject.getAudioTracks().length === 0")
    assert wait_until(lambda: proctor.evaluate(AUDIO_PACKETS) > 50, timeout=10)

    # The camera is lost (unplugged): the page takes it again and publishes on a new connection.
    candidate.evaluate("""() => {
      const camera = window.__pcs.at(-1).pc.getTransceivers()[0].sender.track;
      camera.stop();
      camera.dispatchEvent(new Event("ended"));
    }""")
    assert wait_until(lambda: ("live_restored", "") in live_events(attempt_id), timeout=15)
    expect(status_of(proctor, attempt_id)).to_have_attribute("data-status", "live")

    candidate.locator("#submit-exam").click()
    candidate.locator("#confirm-submit").click()
    expect(candidate.locator("#done-message")).to_be_visible()
    # Submitted: the publisher stopped, and the tile leaves the grid with the attempt.
    expect(proctor.locator(f"#tile-{attempt_id}")).to_have_count(0, timeout=10000)
    assert wait_until(lambda: live_events(attempt_id)[-1:] == [("live_lost", "publisher_left")], 5), \
        live_events(attempt_id)
    assert live_events(attempt_id)[0] == ("live_connected", "")


@pytest.mark.browser
def test_with_live_video_off_the_exam_makes_no_webrtc_connection(new_context):
    live = make_live_exam(live_video=False, start=False)
    candidate = new_context(track_connections=True).new_page()
    take_exam_until_started(candidate, live)
    # The exam works as before: the recorder records.
    expect(candidate.locator("#recorder-state")).to_have_attribute("data-state", "recording", timeout=15000)
    time.sleep(2)
    assert candidate.evaluate("window.__pcs.length") == 0
    expect(candidate.locator("#live-status")).to_have_count(0)
    proctor = open_grid(new_context, live.proctors[0])
    expect(proctor.locator(".live-tile")).to_contain_text("Live video off")
    expect(proctor.locator(".live-tile video")).to_have_count(0)


# -- revocation: access taken away ends what is open ----------------------------------------

# A bare viewer (the grid's module without the grid), its states in window.viewStates.
VIEW = """async (url) => {
  const { LiveViewer } = await import("/live_view.js");
  const video = document.createElement("video");
  document.body.append(video);
  window.viewStates = [];
  new LiveViewer({ url, video, onState: (s) => window.viewStates.push(s.state) }).start();
}"""
CONNECTED = "window.__pcs.some(({ pc }) => pc.connectionState === 'connected')"


def admin_page(new_context, path: str):
    page = new_context().new_page()
    sign_in(page, "admin@example.com")
    page.goto(path)
    expect(page.locator("#page-loaded")).to_be_attached()
    return page


def user_id_of(email: str) -> int:
    with session_scope() as db:
        return db.exec(select(User.id).where(User.email == email)).one()


@pytest.mark.browser
def test_a_deactivated_proctors_live_view_closes_within_seconds_and_says_why(new_context):
    live = make_live_exam()
    start_publishing(new_context, live)
    proctor = open_grid(new_context, live.proctors[0])
    colleague = open_grid(new_context, live.proctors[1])
    for page in (proctor, colleague):
        tile_video_playing(page, live.attempt_id)
    admin = admin_page(new_context, f"/admin/users?q={live.proctors[0]}")

    proctor_id = user_id_of(live.proctors[0])
    clicked_at = time.monotonic()
    admin.click(f"#deactivate-{proctor_id}")
    expect(admin.locator(f"#active-{proctor_id}")).to_have_text("deactivated")
    # Polled: the relay ends the view, the page tries once more, is refused and says so.
    refused = proctor.locator(f"#tile-{live.attempt_id} .live-refused")
    expect(refused).to_contain_text("your access changed", timeout=10000)
    closed_after = time.monotonic() - clicked_at
    assert not proctor.evaluate(CONNECTED)
    print(f"the deactivated proctor's view closed {closed_after:.1f} s after the deactivation")
    # It stays closed (no reconnect loop); the other proctor watches on.
    frames = colleague.evaluate(FRAMES_DECODED)
    assert wait_until(lambda: colleague.evaluate(FRAMES_DECODED) > frames + 10, timeout=5)
    assert not proctor.evaluate(CONNECTED) and refused.is_visible()


@pytest.mark.browser
def test_an_unassigned_proctors_live_view_closes_within_seconds(new_context, app_server):
    live = make_live_exam()
    start_publishing(new_context, live)
    viewer = new_context(track_connections=True).new_page()
    login(viewer, live.proctors[0])
    viewer.evaluate(VIEW, live.view_url("camera"))
    viewer.wait_for_function("window.viewStates.includes('playing')")

    admin = admin_page(new_context, f"/admin/exams/{live.exam_id}")
    admin.click(f"#assign-{user_id_of(live.proctors[0])}")  # unticked
    admin.click("#save-assignments")
    expect(admin.locator("#exam-notice")).to_have_text("Assignments saved.")
    viewer.wait_for_function("window.viewStates.at(-1) === 'refused'", timeout=10000)
    assert not viewer.evaluate(CONNECTED)
    # Refused for good: no further attempts.
    states = viewer.evaluate("window.viewStates.length")
    assert not wait_until(lambda: viewer.evaluate("window.viewStates.length") > states, timeout=3)


# Counts the page's upload requests (PUT/POST under /api/attempts/) from here on.
COUNT_UPLOADS = """() => {
  window.uploadRequests = 0;
  const nativeFetch = window.fetch;
  window.fetch = (input, init) => {
    if (String(input).includes("/api/attempts/")) window.uploadRequests += 1;
    return nativeFetch(input, init);
  };
}"""


@pytest.mark.browser
def test_a_deactivated_candidates_upload_queue_stops_and_keeps_its_chunks(new_context):
    live = make_live_exam(start=False)
    candidate = new_context(track_connections=True).new_page()
    take_exam_until_started(candidate, live)
    candidate.wait_for_function(
        "Number(document.querySelector('#recorder-state')?.dataset.acked) > 0", timeout=20000)
    candidate.wait_for_function(CONNECTED)
    # The queue outlives the exam page (it goes on sending what the stopped recorders hand it).
    candidate.evaluate("window.queue = window.proctorRecorder.queue")
    candidate.evaluate(COUNT_UPLOADS)

    admin = admin_page(new_context, f"/admin/users?q={live.candidate}")
    candidate_id = user_id_of(live.candidate)
    admin.click(f"#deactivate-{candidate_id}")
    expect(admin.locator(f"#active-{candidate_id}")).to_have_text("deactivated")
    # Signed out at once; the recorders stop and hand over their last chunks, which the server
    # refuses as revoked: the queue stops sending and keeps them (in IndexedDB).
    candidate.wait_for_url("**/login**")
    candidate.wait_for_function("Boolean(window.queue.revoked)", timeout=20000)
    assert "withdrawn" in candidate.evaluate("window.queue.revoked")
    kept = candidate.evaluate("window.queue.items.map((item) => item.id)")
    assert kept, "the refused chunks are kept"
    sent = candidate.evaluate("window.uploadRequests")
    assert not wait_until(lambda: candidate.evaluate("window.uploadRequests") > sent, timeout=5), \
        "a revoked token is not tried again"
    assert candidate.evaluate("window.queue.items.map((item) => item.id)") == kept
    # The live publication ended too, and is not taken up again.
    candidate.wait_for_function(f"!({CONNECTED})", timeout=10000)


# -- refusals of the HTTP routes -------------------------------------------------------------


@pytest.mark.browser
def test_the_attempt_page_lists_who_watched_live_from_when_to_when(new_context):
    live = make_live_exam()
    start_publishing(new_context, live)
    proctor = open_grid(new_context, live.proctors[0])
    tile_video_playing(proctor, live.attempt_id)
    proctor.click(f"#tile-{live.attempt_id}")
    proctor.wait_for_function("document.querySelector('#focus-camera')?.videoWidth > 0")
    proctor.click("#focus-close")
    proctor.goto(f"/attempts/{live.attempt_id}/video")  # leaving the grid ends the tile's view too

    def ended_views() -> int:
        with session_scope() as db:
            return sum(1 for view in attempt_views(db, live.attempt_id) if view.ended)

    assert wait_until(lambda: ended_views() == 2, timeout=30)
    proctor.reload()
    expect(proctor.locator("#view-list .view-row")).to_have_count(2)
    rows = proctor.eval_on_selector_all(
        "#view-list .view-row", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert sorted(what for _, what, _, _ in rows) == ["live camera", "live camera_low"]
    for who, what, started, ended in rows:
        assert who.startswith("Live proctor 01"), who
        assert started.endswith("UTC") and ended.endswith("UTC") and ended >= started, (what, started, ended)


@pytest.mark.browser
def test_a_second_tab_or_device_is_told_the_exam_is_open_and_neither_records_nor_publishes(new_context):
    live = make_live_exam(start=False)
    browser_context = new_context(track_connections=True)
    browser_context.set_default_timeout(60000)  # three exam pages at once on a loaded machine
    first = browser_context.new_page()
    take_exam_until_started(first, live)
    expect(first.locator("#recording-indicator")).to_contain_text("Recording", timeout=30000)
    expect(first.locator("#live-status")).to_have_attribute("data-status", "on", timeout=30000)
    attempt_id = candidate_attempt_id(live)

    second = browser_context.new_page()  # a second tab of the same browser
    second.goto(f"/candidate/exams/{live.exam_id}")
    expect(second.locator("#open-elsewhere-message")).to_have_text(
        "This exam is already open in another tab or window. Continue there, or use this one instead: "
        "the other stops recording.", timeout=30000)
    expect(second.locator("#question-prompt")).to_be_visible()
    expect(second.locator("#recorder-state")).to_have_count(0)
    assert second.evaluate("window.__pcs.length") == 0

    # The candidate moves the exam to the second tab: it records and publishes, the first stops.
    second.click("#use-this-tab")
    expect(second.locator("#recording-indicator")).to_contain_text("Recording", timeout=30000)
    expect(second.locator("#live-status")).to_have_attribute("data-status", "on", timeout=30000)
    expect(first.locator("#open-elsewhere-message")).to_contain_text("This exam is now open in another tab or window.",
                                                                     timeout=30000)
    expect(first.locator("#recorder-state")).to_have_count(0)
    first.wait_for_function("window.__pcs.every(({ pc }) => pc.connectionState === 'closed')")

    # Another device (browser) of the same candidate: the server tells it; moving the exam there
    # withdraws the second tab's upload token, which stops its uploads and live video.
    other_browser = new_context(track_connections=True)
    other_browser.set_default_timeout(60000)
    device = other_browser.new_page()
    sign_in(device, live.candidate)
    device.goto(f"/candidate/exams/{live.exam_id}")
    expect(device.locator("#open-elsewhere-message")).to_contain_text("already open in another tab or window",
                                                                      timeout=30000)
    expect(device.locator("#recorder-state")).to_have_count(0)
    device.click("#use-this-tab")
    expect(device.locator("#recording-indicator")).to_contain_text("Recording", timeout=30000)
    expect(second.locator("#upload-revoked")).to_be_visible(timeout=30000)
    second.wait_for_function("window.__pcs.every(({ pc }) => pc.connectionState !== 'connected')",
                             timeout=30000)
    assert live_events(attempt_id)[0] == ("live_connected", "")
