"""Fixtures of the browser tests: headless Chromium with a fake camera (once per session), and a
context and page on the session's app server for each test."""

import subprocess
from pathlib import Path

import pytest

from tests.support.live_pages import context_maker
from tests.support.pages import CHROMIUM


@pytest.fixture(scope="session")
def fake_camera_y4m(tmp_path_factory) -> Path:
    """A short y4m clip (moving test pattern) that Chromium loops as its fake camera."""
    import imageio_ffmpeg

    path = tmp_path_factory.mktemp("camera") / "camera.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x480:rate=15", "-t", "4", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


@pytest.fixture(scope="session")
def browser(fake_camera_y4m):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install --with-browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_camera_y4m}",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--autoplay-policy=no-user-gesture-required",
        ])
        yield browser
        browser.close()


@pytest.fixture
def context(browser, app_server):
    ctx = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    ctx.set_default_timeout(15000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def new_context(browser, app_server):
    """Makes contexts on the app server (the live tests' candidates and proctors)."""
    with context_maker(browser, app_server.url, 15000) as make:
        yield make
