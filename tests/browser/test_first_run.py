"""First run in the browser: the Demo banner and the closed /setup on the session's (demo) server;
on a server of its own started WITHOUT PROCTOR_DEMO over a demo database: the demo accounts no
longer sign in, and /setup with the code from the server's log creates the first admin, once."""

import re
import time

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from proctor_app.db import engine_for, migrate
from proctor_app.demo import ALL_DEMO_USERS, DEMO_PASSWORD, seed_demo
from proctor_app.models import AuditLog, User
from tests.support.pages import login
from tests.support.server import AppServer, free_port

pytestmark = pytest.mark.browser
CODE_LINE = re.compile(r"open /setup with this one-time setup code: (\S+)")
ADMIN_PASSWORD = "first-admin-pass-1"


def test_demo_server_shows_the_banner_and_keeps_setup_closed(page):
    page.goto("/login")
    expect(page.locator("#demo-banner")).to_contain_text("Demo")
    # An admin exists (the demo's): /setup sends everyone to the login page.
    page.goto("/setup")
    page.wait_for_url("**/login**")
    expect(page.locator("#setup-code")).to_have_count(0)
    login(page, "supervisor@example.com")
    expect(page.locator("#demo-banner")).to_be_visible()


@pytest.fixture(scope="module")
def production_start(tmp_path_factory):
    """A server on a database that has the demo data, started without PROCTOR_DEMO."""
    workdir = tmp_path_factory.mktemp("first-run")
    data_dir = workdir / "data"
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'proctor.db'}"
    migrate(url)
    with Session(engine_for(url)) as db:
        seed_demo(db)
        db.commit()
    server = AppServer(free_port(), workdir, extra_env={
        "PROCTOR_DATA_DIR": str(data_dir), "PROCTOR_DEMO": "0", "PROCTOR_SETUP_CODE": ""})
    try:
        server.start()
        yield server, url
    finally:
        server.stop()
        engine_for(url).dispose()


def _setup_code(server: AppServer) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = CODE_LINE.findall(server.log_path.read_text(errors="replace"))
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError("no setup code in the server log:\n" + server.log_path.read_text()[-3000:])


def _fill_setup(page, code: str, email: str) -> None:
    page.fill("#setup-code", code)
    page.fill("#setup-email", email)
    page.fill("#setup-name", "First Admin")
    page.fill("#setup-password", ADMIN_PASSWORD)
    page.fill("#setup-password-again", ADMIN_PASSWORD)
    page.click("#setup-submit")


def test_start_without_demo_disables_demo_accounts_and_setup_creates_the_first_admin_once(
        production_start, browser):
    server, url = production_start
    code = _setup_code(server)
    with Session(engine_for(url)) as db:
        assert not any(u.active for u in db.exec(select(User)))
        assert len(db.exec(select(AuditLog).where(AuditLog.action == "demo_account_disabled")).all()) \
            == len(ALL_DEMO_USERS)
    ctx = browser.new_context(base_url=server.url)
    ctx.set_default_timeout(15000)
    try:
        page = ctx.new_page()
        # The published password opens nothing, and there is no banner.
        page.goto("/login")
        page.fill("#email", "admin@example.com")
        page.fill("#password", DEMO_PASSWORD)
        page.click("#login-submit")
        expect(page.locator("#login-error")).to_be_visible()
        assert "/login" in page.url
        expect(page.locator("#demo-banner")).to_have_count(0)

        page.goto("/setup")
        page.wait_for_selector("#page-loaded", state="attached")
        _fill_setup(page, "not-the-code", "root@example.org")
        expect(page.locator("#setup-error")).to_contain_text("not valid")
        assert "/setup" in page.url
        _fill_setup(page, code, "root@example.org")
        page.wait_for_url("**/login**")
        login(page, "root@example.org", ADMIN_PASSWORD)
        page.wait_for_url("**/admin/users")
        expect(page.locator("#signed-in-as")).to_contain_text("First Admin")
    finally:
        ctx.close()

    # From now on /setup refuses, also with the code that worked.
    ctx = browser.new_context(base_url=server.url)
    try:
        page = ctx.new_page()
        page.goto("/setup")
        page.wait_for_url("**/login**")
        expect(page.locator("#setup-code")).to_have_count(0)
    finally:
        ctx.close()
    with Session(engine_for(url)) as db:
        admins = db.exec(select(User).where(User.role == "admin", User.active == True)).all()  # noqa: E712
        assert [a.email for a in admins] == ["root@example.org"]
