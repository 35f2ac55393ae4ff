"""The attempt video page plays the HLS ladder through hls.js in Chromium: the quality menu lists
Auto and each height, choosing one switches the rendition (hls.js LEVEL_SWITCHED, and the frames
decoded at that height), camera and screen stay in sync; without a ladder it plays the MP4."""

import pytest
from playwright.sync_api import expect

from proctor_app.db import session_scope
from proctor_app.services import processing
from tests.support.finalized import finalize_now, recording_of
from tests.support.ladders import recorded_attempt
from tests.support.polling import wait_for
from tests.support.pages import sign_in

pytestmark = pytest.mark.browser

SECONDS = 20
SYNC_TOLERANCE_S = 0.5


@pytest.fixture(scope="module")
def ladder_attempt(app_server, tmp_path_factory) -> int:
    """Processed by the app's own job worker: the finalize job, then the HLS job it queues."""
    attempt_id = recorded_attempt(tmp_path_factory.mktemp("hls"), {"camera": (640, 480), "screen": (1280, 720)},
                                  SECONDS)
    with session_scope() as db:
        processing.enqueue_finalize(db, attempt_id)
    wait_for(lambda: all(recording_of(attempt_id, s).hls_path for s in ("camera", "screen")), timeout=300,
             what="the HLS ladders made by the app's worker")
    return attempt_id


def _video(page, stream: str, expression: str):
    return page.eval_on_selector(f"#player-video-{stream}", f"v => {expression}")


def _wait_video(page, stream: str, condition: str, timeout: float = 60_000) -> None:
    page.wait_for_function(f"() => {{ const v = document.querySelector('#player-video-{stream}'); "
                           f"return v && ({condition}); }}", timeout=timeout)


def _choose(page, stream: str, label: str) -> None:
    page.select_option(f"#player-quality-{stream}", label=label)


def test_the_player_plays_hls_and_switches_quality(page, ladder_attempt):
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{ladder_attempt}/video")
    expect(page.locator("#player-video-camera")).to_have_attribute("data-player-source", "hls", timeout=30_000)
    expect(page.locator("#player-video-screen")).to_have_attribute("data-player-source", "hls")
    options = page.locator("#player-quality-screen option")
    expect(options).to_have_count(4, timeout=30_000)
    assert options.all_inner_texts()[1:] == ["360p", "480p", "720p"]
    assert options.all_inner_texts()[0].startswith("Auto")
    expect(page.locator("#player-quality-camera option")).to_have_count(3)

    page.click("#player-play")
    _wait_video(page, "camera", "v.currentTime > 1")
    for stream, label, height in (("screen", "360p", 360), ("screen", "720p", 720), ("camera", "360p", 360),
                                  ("camera", "480p", 480)):
        page.click("#player-timeline", position={"x": 1, "y": 10})  # from the start: room to play on
        _choose(page, stream, label)
        # hls.js says it switched, and the element decodes frames of that height; time goes on.
        expect(page.locator(f"#player-video-{stream}")).to_have_attribute("data-level-height", str(height),
                                                                          timeout=60_000)
        _wait_video(page, stream, f"v.videoHeight === {height}")
        if not _video(page, "camera", "v.paused"):
            start = _video(page, stream, "v.currentTime")
            _wait_video(page, stream, f"v.currentTime > {start} + 0.3 || v.ended")
    # Auto gives the choice back to hls.js.
    page.select_option("#player-quality-camera", value="-1")
    expect(page.locator("#player-quality-camera option").first).to_have_text("Auto (480p)")


def test_camera_and_screen_stay_in_sync_at_every_speed(page, ladder_attempt):
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{ladder_attempt}/video")
    expect(page.locator("#player-video-screen")).to_have_attribute("data-player-source", "hls", timeout=30_000)
    _wait_video(page, "screen", "v.readyState >= 1")
    page.click("#player-play")
    for speed in ("2", "4", "0.5"):
        page.select_option("#player-speed", speed)
        _wait_video(page, "screen", f"v.playbackRate === {speed} && !v.paused")
        start = _video(page, "camera", "v.currentTime")
        if start > SECONDS - 6:  # room to play on
            page.click("#player-back")
            page.click("#player-back")
            page.click("#player-back")
            start = _video(page, "camera", "v.currentTime")
        _wait_video(page, "camera", f"v.currentTime > {start} + 1.5")
        # The follower is put back within the tolerance whenever it drifts: wait for it to be there.
        page.wait_for_function(
            "tol => { const c = document.querySelector('#player-video-camera'), "
            "s = document.querySelector('#player-video-screen'); "
            "return !c.paused && !s.paused && Math.abs(c.currentTime - s.currentTime) < tol; }",
            arg=SYNC_TOLERANCE_S, timeout=30_000)


def test_without_a_ladder_the_mp4_plays(page, tmp_path_factory):
    attempt_id = recorded_attempt(tmp_path_factory.mktemp("mp4"), {"camera": (320, 240)}, 6)
    finalize_now(attempt_id)  # the MP4 alone, no job: nothing queues its ladder
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{attempt_id}/video")
    camera = page.locator("#player-video-camera")
    expect(camera).to_have_attribute("data-player-source", "mp4", timeout=30_000)
    _wait_video(page, "camera", "v.src.includes('/camera/video?') && v.readyState >= 1")
    expect(page.locator("#player-quality-camera")).to_have_count(0)
    page.click("#player-play")
    _wait_video(page, "camera", "v.currentTime > 0.5")
