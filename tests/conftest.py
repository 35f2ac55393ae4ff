"""Shared fixtures. The app is built and started ONCE per test session (real Reflex prod server,
SQLite and a storage folder in a temporary directory); browser tests drive it with Playwright."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
_session_dir = Path(tempfile.mkdtemp(prefix="proctor-tests-"))
# Before any proctor_app import: the test process and the server share this database and storage.
os.environ["PROCTOR_DATA_DIR"] = str(_session_dir / "data")
os.environ.pop("PROCTOR_DATABASE_URL", None)
os.environ.pop("PROCTOR_STORAGE_DIR", None)

from proctor_app.config import config  # noqa: E402
from proctor_app.db import engine_for, migrate, session_scope  # noqa: E402
from proctor_app.demo import DEMO_PASSWORD, seed_demo  # noqa: E402

POSTGRES_URL = os.environ.get("PROCTOR_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("PROCTOR_CHROMIUM", "/usr/bin/chromium")


@contextmanager
def postgres_schema(label: str) -> Iterator[str]:
    """A PostgreSQL schema of the caller's own, migrated to head; yields its URL, drops it after.
    Tests on the shared server never meet each other's rows this way."""
    import sqlalchemy as sa

    schema = f"t_{label}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_url(request) -> Iterator[str]:
    with postgres_schema(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")) as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s")


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class AppServer:
    """The real app (`reflex run --env prod --single-port`) as a child process; restartable."""

    def __init__(self, port: int, workdir: Path, extra_env: dict[str, str] | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> None:
        # A frontend build folder of this test session's own, so parallel sessions never collide.
        env = dict(os.environ, PROCTOR_PORT=str(self.port), REFLEX_USE_SYSTEM_BUN="1",
                   REFLEX_WEB_WORKDIR=str(self.workdir / "web"),
                   REFLEX_STATES_WORKDIR=str(self.workdir / "states"),
                   REFLEX_TELEMETRY_ENABLED="false",
                   PATH=f"{ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
                   **self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "reflex", "run", "--env", "prod", "--single-port"],
                                     cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for_http(f"{self.url}/ping", timeout, self.proc)
        wait_for_http(f"{self.url}/login", timeout, self.proc)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def demo_db():
    """The session's database, migrated and seeded with the demo data; no server needed."""
    migrate()
    with session_scope() as db:
        seed_demo(db)


@pytest.fixture(scope="session")
def app_server(demo_db):
    server = AppServer(free_port(), _session_dir)
    try:
        server.start()
    except Exception:
        print(server.log_path.read_text()[-5000:])
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_camera_y4m() -> Path:
    """A short y4m clip (moving test pattern) that Chromium loops as its fake camera."""
    import imageio_ffmpeg

    path = _session_dir / "camera.y4m"
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


def login(page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the login form and wait until the app has left the login page."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def storage_dir() -> Path:
    return config.storage_dir


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0:
        shutil.rmtree(_session_dir, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    # Sync Playwright keeps an event loop running on the main thread for the rest of the session,
    # so tests that run an asyncio loop of their own must all come before the first browser test.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
