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
import pytest
from playwright.sync_api import expect

from tests.support.live_clients import EncodedSource, Publisher, encode_clip
from tests.support.live_exams import LiveExam, candidate_attempt_id, live_events, make_live_exam, publish_url
from tests.support.live_pages import (
    AUDIO_PACKETS,
    FRAMES_DECODED,
    TRACK_PEER_CONNECTIONS,
    open_grid,
    status_of,
    take_exam_until_started,
    tile_video_playing,
)

# The candidate's side without the exam page: the publisher module on a page of the app's origin.
PUBLISH = """async ([url, token, withScreen]) => {
  const { LivePublisher } = await import("/live_publish.js");
  const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  const screen = withScreen ? await navigator.mediaDevices.getDisplayMedia({ video: true }) : null;
  window.liveStatus = [];
  window.publisher = new LivePublisher({ url, token, onStatus: (s) => window.liveStatus.push(s.status) });
  window.publisher.start({ camera, screen });
}"""


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


@pytest.fixture
def new_context(browser, app_server):
    contexts = []

    def make(track_connections: bool = False):
        ctx = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
        ctx.set_default_timeout(15000)
        if track_connections:
            ctx.add_init_script(TRACK_PEER_CONNECTIONS)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


def start_publishing(new_context, live: LiveExam, screen: bool = False):
    ctx = new_context()
    page = ctx.new_page()
    page.goto("/login")
    page.evaluate(PUBLISH, [live.publish_url, live.token, screen])
    page.wait_for_function("window.liveStatus.includes('live')")
    return ctx, page


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
    expect(proctor.locator("#focus-events")).to_contain_text("live connected")

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


# -- refusals of the HTTP routes -------------------------------------------------------------
