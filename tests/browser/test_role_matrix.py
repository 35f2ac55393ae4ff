"""Every page against every role and anonymous access: allowed pages load for the user, the others
send signed-in users to /forbidden and anonymous visitors to /login. "admin" is the install's
administrator; the org_* users are of the demo's second organisation, which finds the default
organisation's exam and attempt (the ids below) not there."""

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.demo import DEMO_EXAM_TITLE, SECOND_DEMO_EXAM_TITLE
from proctor_app.models import Attempt, Exam, User
from tests.support.factories import make_attempt
from tests.support.pages import sign_in

pytestmark = pytest.mark.browser

ROLE_EMAILS = {
    "admin": "admin@example.com",
    "proctor": "proctor@example.com",
    "supervisor": "supervisor@example.com",
    "candidate": "carol@example.com",
    "org_admin": "admin@northwind.example",
    "org_proctor": "proctor@northwind.example",
    "org_candidate": "dave@northwind.example",
    "anonymous": None,
}
ADMINS = {"admin", "org_admin"}
CANDIDATES = {"candidate", "org_candidate"}
STAFF = {"admin", "proctor", "supervisor", "org_admin", "org_proctor"}
# route template -> roles allowed to open it
PAGES = {
    "/admin/users": ADMINS,
    "/admin/exams": ADMINS,
    "/admin/exams/{exam_id}": ADMINS,
    "/admin/settings": ADMINS,  # for org admins, only the notice that settings are the install's
    "/admin/health": {"admin"},
    "/admin/api-keys": ADMINS,
    "/admin/webhooks": ADMINS,
    "/admin/organisations": {"admin"},
    "/candidate": CANDIDATES,
    "/candidate/exams/{exam_id}": CANDIDATES,
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


def _landings(ctx, expected: dict[str, str]) -> dict[str, str]:
    """Open every path of `expected` (path -> where it should lead) in a tab of its own, all at
    once, and return where each settles: on its path once its on_load guard has run and no
    redirect followed for a while, or on the page a redirect led to. (The tabs wait side by side:
    one at a time, the waits for redirects that do not come added up to most of the test.)"""
    tabs = {}
    for path in expected:
        tabs[path] = ctx.new_page()
        tabs[path].goto(path, wait_until="commit")
    landed: dict[str, str] = {}
    settled_since: dict[str, float] = {}
    deadline = time.monotonic() + 40
    while len(landed) < len(tabs) and time.monotonic() < deadline:
        for path, tab in tabs.items():
            if path in landed:
                continue
            try:
                here, loaded = tab.evaluate(f"[{HERE}, {LOADED}]")
            except PlaywrightError:  # the page navigated while we asked
                here, loaded = None, False
            if here in ("/login", "/forbidden"):
                landed[path] = here
            elif here == path and loaded:
                since = settled_since.setdefault(path, time.monotonic())
                # A denied page redirects right after its guard ran; an allowed one stays.
                if time.monotonic() - since > (5 if expected[path] != path else 1.5):
                    landed[path] = here
        time.sleep(0.1)
    for path, tab in tabs.items():
        landed.setdefault(path, f"unsettled at {tab.evaluate(HERE)}")
    return landed


@pytest.mark.parametrize("role", ROLE_EMAILS)
def test_every_page_admits_exactly_its_roles(browser, app_server, ids, role):
    ctx = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    try:
        if ROLE_EMAILS[role]:
            sign_in(ctx.new_page(), ROLE_EMAILS[role])
        expected = {}
        for template, allowed in PAGES.items():
            path = template.format(**ids)
            expected[path] = path if role in allowed else ("/login" if role == "anonymous" else "/forbidden")
        landed = _landings(ctx, expected)
        wrong = {p: (landed[p], e) for p, e in expected.items() if landed[p] != e}
        assert not wrong, f"{role}: (landed, expected) {wrong}"
    finally:
        ctx.close()


# What users of the second organisation find of the default one's exam, attempt and users.
NOT_THERE = {
    "org_admin": [("/admin/exams/{exam_id}", "#exam-not-found"), ("/attempts/{attempt_id}/video", "#attempt-missing"),
                  ("/admin/settings", "#settings-install-only")],
    "org_proctor": [("/attempts/{attempt_id}/video", "#attempt-missing")],
    "org_candidate": [("/candidate/exams/{exam_id}", "#refused")],
}


@pytest.mark.parametrize("role", NOT_THERE)
def test_another_organisations_exam_attempt_and_users_are_not_there(browser, app_server, ids, role):
    ctx = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    try:
        page = ctx.new_page()
        sign_in(page, ROLE_EMAILS[role])
        for template, state in NOT_THERE[role]:
            page.goto(template.format(**ids))
            expect(page.locator(state)).to_be_visible(timeout=20_000)
        if role == "org_candidate":
            page.goto("/candidate")
            expect(page.locator(".exam-row", has_text=SECOND_DEMO_EXAM_TITLE)).to_be_visible(timeout=20_000)
            expect(page.locator(".exam-row", has_text=DEMO_EXAM_TITLE)).to_have_count(0)
            return
        page.goto("/attempts")
        expect(page.locator("#attempts-table")).to_be_visible(timeout=20_000)
        expect(page.locator(f"#open-attempt-{ids['attempt_id']}")).to_have_count(0)
        if role == "org_admin":
            page.goto("/admin/users?q=dave@northwind.example")
            expect(page.locator("#users-table")).to_contain_text("dave@northwind.example", timeout=20_000)
            # Another organisation's user is not found, even by their exact address.
            page.goto("/admin/users?q=carol@example.com")
            expect(page.locator("#page-info")).to_contain_text("(0 users)", timeout=20_000)
            expect(page.locator("#users-table")).not_to_contain_text("carol@example.com")
            page.goto("/admin/exams")
            expect(page.get_by_text(SECOND_DEMO_EXAM_TITLE)).to_be_visible(timeout=20_000)
            expect(page.get_by_text(DEMO_EXAM_TITLE)).to_have_count(0)
    finally:
        ctx.close()


def test_the_install_admin_sees_both_organisations(browser, app_server, ids):
    ctx = browser.new_context(base_url=app_server.url)
    try:
        page = ctx.new_page()
        sign_in(page, ROLE_EMAILS["admin"])
        page.goto("/admin/users?q=dave@northwind.example")
        expect(page.locator("#users-table")).to_contain_text("dave@northwind.example", timeout=20_000)
        page.goto("/admin/users?q=carol@example.com")
        expect(page.locator("#users-table")).to_contain_text("carol@example.com", timeout=20_000)
        page.goto("/admin/organisations")
        expect(page.locator("#organisation-northwind")).to_be_visible(timeout=20_000)
        expect(page.locator("#organisation-default")).to_be_visible()
        page.goto(f"/attempts/{ids['attempt_id']}/video")
        expect(page.locator("#attempt-missing")).to_have_count(0)
        page.goto("/admin/exams")
        expect(page.get_by_text(SECOND_DEMO_EXAM_TITLE)).to_be_visible(timeout=20_000)
        expect(page.get_by_text(DEMO_EXAM_TITLE)).to_be_visible()
    finally:
        ctx.close()
