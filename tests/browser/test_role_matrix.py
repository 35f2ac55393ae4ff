"""Every page against every role and anonymous access: allowed pages load for the user, the others
send signed-in users to /forbidden and anonymous visitors to /login."""

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.demo import DEMO_EXAM_TITLE
from proctor_app.models import Attempt, Exam, User
from tests.support.factories import make_attempt
from tests.support.pages import login

pytestmark = pytest.mark.browser

ROLE_EMAILS = {
    "admin": "admin@example.com",
    "proctor": "proctor@example.com",
    "supervisor": "supervisor@example.com",
    "candidate": "carol@example.com",
    "anonymous": None,
}
STAFF = {"admin", "proctor", "supervisor"}
# route template -> roles allowed to open it
PAGES = {
    "/admin/users": {"admin"},
    "/admin/exams": {"admin"},
    "/admin/exams/{exam_id}": {"admin"},
    "/admin/settings": {"admin"},
    "/admin/health": {"admin"},
    "/admin/api-keys": {"admin"},
    "/admin/webhooks": {"admin"},
    "/candidate": {"candidate"},
    "/candidate/exams/{exam_id}": {"candidate"},
    "/attempts": STAFF,
    "/attempts/{attempt_id}/video": STAFF,
    "/proctor": STAFF,
}


@pytest.fixture(scope="module")
def ids(app_server):
    with session_scope() as db:
        exam = db.exec(select(Exam).where(Exam.title == DEMO_EXAM_TITLE)).one()
        carol = db.exec(select(User).where(User.email == "carol@example.com")).one()
        attempt = db.exec(select(Attempt).where(Attempt.exam_id == exam.id,
                                                Attempt.candidate_id == carol.id)).first()
        if attempt is None:
            attempt = make_attempt(db, exam, carol)
        return {"exam_id": exam.id, "attempt_id": attempt.id}


HERE = "location.pathname.replace(/\\/$/, '') || '/'"
LOADED = "document.querySelector('#page-loaded') !== null"


def _landing(page, path: str, expected: str) -> str:
    """Open `path` and return where the browser settles: on `path` once its on_load guard has run
    and no redirect followed for a while, or on the page a redirect led to."""
    page.goto(path)
    deadline = time.monotonic() + 20
    settled_since = None
    while time.monotonic() < deadline:
        try:
            here, loaded = page.evaluate(f"[{HERE}, {LOADED}]")
        except PlaywrightError:  # the page navigated while we asked
            here, loaded = None, False
        if here in ("/login", "/forbidden"):
            return here
        if here == path and loaded:
            settled_since = settled_since or time.monotonic()
            # A denied page redirects right after its guard ran; an allowed one stays.
            if time.monotonic() - settled_since > (5 if expected != path else 1.5):
                return here
        time.sleep(0.1)
    return f"unsettled at {page.evaluate(HERE)}"


@pytest.mark.parametrize("role", ROLE_EMAILS)
def test_every_page_admits_exactly_its_roles(browser, app_server, ids, role):
    ctx = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    try:
        page = ctx.new_page()
        if ROLE_EMAILS[role]:
            login(page, ROLE_EMAILS[role])
        outcomes = {}
        for template, allowed in PAGES.items():
            path = template.format(**ids)
            expected = path if role in allowed else ("/login" if role == "anonymous" else "/forbidden")
            landed = _landing(page, path, expected)
            outcomes[path] = (landed, expected)
        wrong = {p: o for p, o in outcomes.items() if o[0] != o[1]}
        assert not wrong, f"{role}: (landed, expected) {wrong}"
    finally:
        ctx.close()
