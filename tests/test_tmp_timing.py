import time
from playwright.sync_api import expect
from tests.test_live_browser import *  # noqa

def test_timing(new_context):
    t = time.monotonic()
    def lap(what):
        nonlocal t
        now = time.monotonic(); print(f"{what}: {now - t:.1f}s"); t = now
    live = make_live_exam(); lap("make")
    start_publishing(new_context, live); lap("publish")
    proctor = open_grid(new_context, live.proctors[0]); lap("grid")
    expect(status_of(proctor, live.attempt_id)).to_have_attribute("data-status", "live"); lap("live")
    tile_video_playing(proctor, live.attempt_id); lap("playing")
    proctor.click(f"#tile-{live.attempt_id}")
    proctor.wait_for_function("document.querySelector('#focus-camera')?.videoWidth > 0"); lap("focus")
    expect(proctor.locator("#focus-events")).to_contain_text("live connected"); lap("events")
    late = open_grid(new_context, live.proctors[1]); lap("late grid")
    tile_video_playing(late, live.attempt_id); lap("late playing")
