"""Fixtures of every kind of test. The app is built and started ONCE per test session (real Reflex
prod server, SQLite and a storage folder in a temporary directory) for the integration and browser
tests; the browser's own fixtures are in tests/browser/conftest.py, shared code in tests/support/.

The layout orders the run (pytest.ini: testpaths = tests/unit tests/integration tests/browser):
sync Playwright keeps an event loop running on the main thread for the rest of the session, so
tests that run an asyncio loop of their own must come before the first browser test."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_session_dir = Path(tempfile.mkdtemp(prefix="proctor-tests-"))
# Before any proctor_app import: the test process and the server share this database and storage.
os.environ["PROCTOR_DATA_DIR"] = str(_session_dir / "data")
os.environ.pop("PROCTOR_DATABASE_URL", None)
os.environ.pop("PROCTOR_STORAGE_DIR", None)
# Webhook receivers in the tests listen on 127.0.0.1 (the app server inherits this).
os.environ["PROCTOR_WEBHOOKS_ALLOW_PRIVATE"] = "1"

from proctor_app.config import config  # noqa: E402
from proctor_app.db import migrate, session_scope  # noqa: E402
from proctor_app.demo import seed_demo  # noqa: E402
from proctor_app.services.settings import update_settings  # noqa: E402
from proctor_app.services.webhooks import outbox  # noqa: E402
from tests.support import samples  # noqa: E402
from tests.support.factories import user_id  # noqa: E402
from tests.support.finalized import CLIP_S  # noqa: E402
from tests.support.postgres import postgres_schema  # noqa: E402
from tests.support.server import AppServer, free_port  # noqa: E402
from tests.support.turn import TurnServer  # noqa: E402

# As in the app's processes (runtime.py): changes made by the tests write their webhook events.
outbox.install()

BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


@pytest.fixture
def pg_url(request) -> Iterator[str]:
    with postgres_schema(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")) as url:
        yield url


@pytest.fixture(scope="session")
def demo_db():
    """The session's database, migrated and seeded with the demo data; no server needed."""
    migrate()
    with session_scope() as db:
        seed_demo(db)


@pytest.fixture
def admin_id(demo_db) -> int:
    """The demo admin's user id."""
    return user_id("admin@example.com")


@pytest.fixture(scope="session")
def app_server(demo_db):
    """The session's app server, deliberately in demo mode: without PROCTOR_DEMO=1 its start-up
    would deactivate the demo accounts the tests sign in with."""
    server = AppServer(free_port(), _session_dir, extra_env={"PROCTOR_DEMO": "1"})
    try:
        server.start()
    except Exception:
        print(server.log_path.read_text()[-5000:])
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def turn_server(tmp_path_factory):
    """coturn on loopback with the TURN REST shared secret (tests/support/turn.py)."""
    server = TurnServer(tmp_path_factory.mktemp("turn"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> bytes:
    """An 18 s (CLIP_S) H.264 recording as the browser would make it (keyframe every 2 s)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    return samples.encode(path, CLIP_S, "h264", size=(320, 240), fps=15).read_bytes()


@pytest.fixture
def keep_raw_chunks():
    """Raw chunks kept after processing (the admin setting), so an attempt can be processed again."""
    with session_scope() as db:
        update_settings(db, {"keep_raw_chunks": True}, None)
    yield
    with session_scope() as db:
        update_settings(db, {"keep_raw_chunks": False}, None)


@pytest.fixture
def storage_dir() -> Path:
    return config.storage_dir


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0:
        shutil.rmtree(_session_dir, ignore_errors=True)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config, items):
    # The layout is the order (checked, not changed): a browser test outside tests/browser/, or a
    # test after a browser one, would meet Playwright's loop on the main thread.
    in_browser = [BROWSER_TESTS in item.path.parents for item in items]
    misplaced = [item.nodeid for item, browser in zip(items, in_browser)
                 if (item.get_closest_marker("browser") is not None) != browser]
    if misplaced:
        raise pytest.UsageError("browser tests (and only they) belong in tests/browser/, marked "
                                f"@pytest.mark.browser: {', '.join(misplaced)}")
    if any(first and not then for first, then in zip(in_browser, in_browser[1:])):
        raise pytest.UsageError("tests/browser/ must come last: run `python -m pytest`, or name the "
                                "folders in the order tests/unit tests/integration tests/browser")
