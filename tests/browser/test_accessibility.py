"""Accessibility in Chromium: every page, for each role that uses it and in each state that matters
(the exam's steps and warnings, dialogs, the proctor's focused view), has no serious or critical
axe-core violation; the proctor's tiles work from the keyboard."""

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import User
from tests.support.axe import assert_accessible
from tests.support.exam_pages import DENY_CAMERA_SWITCH, candidate_with_exam, start_exam
from tests.support.live_exams import make_live_exam
from tests.support.live_pages import take_exam_until_started
from tests.support.pages import sign_in
from tests.support.review_media import make_review_attempt

pytestmark = pytest.mark.browser

INSTALL_ADMIN = "admin@example.com"
ORG_ADMIN = "admin@northwind.example"
# (who signs in, which page, an element that shows once its data is there). {attempt} and {exam}
# are the review attempt's.
PAGES = [
    (None, "/login", "#login-submit"),
    ("alice@example.com", "/candidate", ".exam-row"),
    ("alice@example.com", "/admin/users", "#forbidden"),
    ("proctor@example.com", "/attempts", ".attempt-row"),
    ("supervisor@example.com", "/attempts", ".attempt-row"),
    (INSTALL_ADMIN, "/attempts", ".attempt-row"),
    ("proctor@example.com", "/attempts/{attempt}/video", "#player-video-camera"),
    ("supervisor@example.com", "/attempts/{attempt}/video", "#player-video-camera"),
    (INSTALL_ADMIN, "/attempts/{attempt}/video", "#player-video-camera"),
    ("supervisor@example.com", "/proctor", "#count-live"),
    (INSTALL_ADMIN, "/admin/users", "tr[id^=user-]"),
    (INSTALL_ADMIN, "/admin/exams", "#exams-table"),
    (INSTALL_ADMIN, "/admin/exams/{exam}", "#exam-title"),
    (INSTALL_ADMIN, "/admin/settings", "#save-settings"),
    (INSTALL_ADMIN, "/admin/api-keys", "#create-key"),
    (INSTALL_ADMIN, "/admin/webhooks", "#endpoints-table"),
    (INSTALL_ADMIN, "/admin/health", "#health-refresh"),
    (INSTALL_ADMIN, "/admin/organisations", "#create-organisation"),
    (ORG_ADMIN, "/admin/users", "tr[id^=user-]"),
    (ORG_ADMIN, "/admin/exams", "#exams-table"),
    (ORG_ADMIN, "/admin/api-keys", "#create-key"),
    (ORG_ADMIN, "/admin/webhooks", "#endpoints-table"),
]


@pytest.fixture(scope="module")
def review(app_server):
    return make_review_attempt()


@pytest.fixture(scope="module")
def live(app_server):
    """An exam with started attempts (no live video): the proctor's grid shows their tiles."""
    return make_live_exam(live_video=False, candidates=2)


def _shows(page, selector: str) -> None:
    expect(page.locator(selector).first).to_be_visible(timeout=30_000)


def _open(page, email: str | None, path: str, ready: str) -> None:
    if email:
        sign_in(page, email)
    page.goto(path)
    _shows(page, ready)


@pytest.mark.parametrize("email, path, ready", PAGES,
                         ids=[f"{email or 'anonymous'} {path}" for email, path, _ in PAGES])
def test_page_has_no_serious_violation(page, review, email, path, ready):
    path = path.format(attempt=review.attempt_id, exam=review.exam_id)
    _open(page, email, path, ready)
    assert_accessible(page, f"{path} as {email or 'anonymous'}")


def test_the_reset_password_dialog_has_no_serious_violation(page):
    _open(page, INSTALL_ADMIN, "/admin/users?q=bob@example.com", "#users-table")
    with session_scope() as db:
        bob = db.exec(select(User.id).where(User.email == "bob@example.com")).one()
    page.click(f"#reset-{bob}")
    _shows(page, "#reset-password")
    assert_accessible(page, "the reset password dialog")


def test_the_retention_run_dialog_has_no_serious_violation(page):
    _open(page, INSTALL_ADMIN, "/admin/settings", "#save-settings")
    page.click("#run-now")
    _shows(page, "#run-now-confirm")
    assert_accessible(page, "the retention run confirmation")


def _consent(page, email, exam_id):
    sign_in(page, email)
    page.goto(f"/candidate/exams/{exam_id}")
    _shows(page, "#consent-accept")


def _device_check(page, email, exam_id):
    _consent(page, email, exam_id)
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()
    _shows(page, "#device-ok")


def _recording_warning(page, email, exam_id):
    start_exam(page, email, exam_id, device_check=False)
    # Announced to screen readers as it appears (an alert), and so is the recorder's state.
    expect(page.get_by_role("alert")).to_contain_text("goes on without it")
    expect(page.get_by_role("status").filter(has_text="Not recording")).to_be_visible()


def _recording_blocked(page, email, exam_id):
    _device_check(page, email, exam_id)
    page.evaluate("window.__denyCamera = true")  # denied after the check: the recorder fails
    page.locator("#start-exam").click()
    _shows(page, "#recording-blocked-message")


def test_exam_page_has_no_serious_violation_from_consent_to_submitted(page):
    """The candidate's exam page in each state of one exam taken from start to end."""
    email, exam_id = candidate_with_exam()
    _consent(page, email, exam_id)
    assert_accessible(page, "the exam page, consent")
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()
    _shows(page, "#device-ok")
    assert_accessible(page, "the exam page, device check")
    page.locator("#start-exam").click()
    _shows(page, "#question-prompt")
    page.locator("#submit-exam").click()
    _shows(page, "#confirm-submit")
    assert_accessible(page, "the exam page, submit dialog")
    page.locator("#confirm-submit").click()
    _shows(page, "#done-message")
    assert_accessible(page, "the exam page, submitted")


# The candidate's exam page in the states a camera failure leads to: (how to get there, the exam's
# flags, whether the camera is refused from the start).
EXAM_STATES = {
    "recording warning": (_recording_warning, {"recording_required": False}, True),
    "recording blocked": (_recording_blocked, {}, False),
}


@pytest.mark.parametrize("state", list(EXAM_STATES))
def test_exam_page_has_no_serious_violation(context, state):
    reach, flags, camera_refused = EXAM_STATES[state]
    context.add_init_script(DENY_CAMERA_SWITCH + ("window.__denyCamera = true;" if camera_refused else ""))
    page = context.new_page()
    email, exam_id = candidate_with_exam(**flags)
    reach(page, email, exam_id)
    assert_accessible(page, f"the exam page, {state}")


def test_exam_page_with_live_video_has_no_serious_violation(page):
    live = make_live_exam(start=False)
    take_exam_until_started(page, live)
    expect(page.get_by_role("status").filter(has_text="Live proctoring")).to_be_visible()
    assert_accessible(page, "the exam page with live video")


@pytest.mark.parametrize("who", ["proctor", "install admin"])
def test_proctor_grid_and_focus_view_have_no_serious_violation(page, live, who):
    email = live.proctors[0] if who == "proctor" else INSTALL_ADMIN
    attempt_id = live.attempt_id
    _open(page, email, "/proctor", "#count-live")
    # The install admin sees every attempt in progress: the search finds this one's tile.
    page.fill("#filter-search", live.candidate)
    page.click("#search-submit")
    _shows(page, f"#tile-{attempt_id}")
    # Connection changes are announced: the counts and each tile's status are live regions.
    expect(page.locator(f"#tile-{attempt_id}").get_by_role("status")).to_have_attribute("data-status", "offline")
    assert_accessible(page, f"the proctor grid as {who}")
    page.click(f"#tile-{attempt_id}")
    _shows(page, "#focus")
    assert_accessible(page, f"the focused view as {who}")


def test_a_tile_opens_and_closes_the_focused_view_from_the_keyboard(page, live):
    first, second = (attempt_id for attempt_id, _ in live.grants)
    _open(page, live.proctors[0], "/proctor", f"#tile-{second}")
    # Reached with Tab from the search field before the grid, announced as a button.
    page.locator("#filter-search").focus()
    tile = page.locator(f"#tile-{first}")
    for _ in range(20):
        page.keyboard.press("Tab")
        if tile.evaluate("el => el === document.activeElement"):
            break
    expect(tile).to_be_focused()
    with session_scope() as db:
        name = db.exec(select(User.name).where(User.email == live.candidates[0])).one()
    expect(page.get_by_role("button", name=name)).to_have_attribute("id", f"tile-{first}")

    page.keyboard.press("Enter")
    expect(page.locator("#focus")).to_have_attribute("data-attempt-id", str(first))
    page.keyboard.press("Escape")
    expect(page.locator("#focus")).to_have_count(0)

    page.locator(f"#tile-{second}").focus()
    scroll_before = page.evaluate("window.scrollY")
    page.keyboard.press(" ")
    expect(page.locator("#focus")).to_have_attribute("data-attempt-id", str(second))
    assert page.evaluate("window.scrollY") == scroll_before  # Space clicked, it did not scroll
    page.keyboard.press("Escape")
    expect(page.locator("#focus")).to_have_count(0)
