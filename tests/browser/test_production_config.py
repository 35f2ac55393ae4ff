"""The production configuration for real: PostgreSQL for data and Redis for Reflex state."""

import httpx
import pytest
from sqlmodel import Session, create_engine, select

from proctor_app.models import LoginSession, User
from tests.support.pages import login
from tests.support.postgres import postgres_schema
from tests.support.server import AppServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("production")
    with postgres_schema("production") as db_url:
        server = AppServer(free_port(), workdir, extra_env={
            "PROCTOR_DATABASE_URL": db_url, "REFLEX_REDIS_URL": REDIS_URL,
            "PROCTOR_DATA_DIR": str(workdir / "data"), "PROCTOR_DEMO": "1",
        })
        try:
            server.start()
            yield server, db_url
        finally:
            server.stop()


def test_app_on_postgres_and_redis_migrates_seeds_and_signs_in(production_server, browser):
    server, db_url = production_server
    engine = create_engine(db_url)
    with Session(engine) as db:
        assert db.exec(select(User).where(User.email == "admin@example.com")).one().role == "admin"
    ctx = browser.new_context(base_url=server.url)
    try:
        page = ctx.new_page()
        login(page, "admin@example.com")
        assert "Ada Admin" in page.text_content("#signed-in-as")
        with Session(engine) as db:
            assert db.exec(select(LoginSession)).first() is not None
        # Reflex keeps its state in Redis in this mode.
        import redis

        assert redis.Redis.from_url(REDIS_URL).dbsize() > 0
    finally:
        ctx.close()
        engine.dispose()
    assert httpx.get(f"{server.url}/api/time").status_code == 200
