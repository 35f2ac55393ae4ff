"""The candidate's exam flow in headless Chromium with the fake camera: consent, device check,
answers, reload, submit, time-out, and the role and assignment guards."""

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlmodel import delete, select

from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_EXAM_TITLE, DEMO_PASSWORD, DEMO_USERS
from proctor_app.models import (
    Answer,
    Attempt,
    AttemptStatus,
    Exam,
    ProctoringEvent,
    Role,
    User,
    utcnow,
)
from proctor_app.services import attempts
from proctor_app.services.attempts import AttemptError
from tests.support.factories import make_exam
from tests.support.pages import CHROMIUM, login, sign_in
from tests.support.polling import wait_for

pytestmark = pytest.mark.browser


def _ids(email: str) -> tuple[int, int]:
    with session_scope() as db:
        exam_id = db.exec(select(Exam.id).where(Exam.title == DEMO_EXAM_TITLE)).one()
        return exam_id, db.exec(select(User.id).where(User.email == email)).one()


def _attempt(email: str) -> Attempt | None:
    exam_id, user_id = _ids(email)
    with session_scope() as db:
        return db.exec(select(Attempt).where(Attempt.exam_id == exam_id,
                                             Attempt.candidate_id == user_id)).first()


def _fresh_start(email: str) -> int:
    """The demo exam's id, with no attempt of this candidate left from another test."""
    attempt = _attempt(email)
    if attempt is not None:
        with session_scope() as db:
            db.exec(delete(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt.id))
            db.exec(delete(Answer).where(Answer.attempt_id == attempt.id))
            db.exec(delete(Attempt).where(Attempt.id == attempt.id))
    return _ids(email)[0]


# The events of the exam flow; recording and live streaming add their own to the same attempt.
FLOW_EVENTS = ("consent_accepted", "device_check_passed", "device_check_failed", "exam_started",
               "question_viewed", "answer_saved", "clock_synced", "submitted", "auto_submitted")


def _event_kinds(attempt_id: int) -> list[str]:
    with session_scope() as db:
        return list(db.exec(select(ProctoringEvent.kind).where(ProctoringEvent.attempt_id == attempt_id,
                                                               ProctoringEvent.kind.in_(FLOW_EVENTS))
                            .order_by(ProctoringEvent.id)))


def _answers(attempt_id: int) -> dict[int, str]:
    with session_scope() as db:
        return dict(db.exec(select(Answer.question_id, Answer.value)
                            .where(Answer.attempt_id == attempt_id)).all())


def _pass_consent_and_check(page) -> None:
    expect(page.locator("#consent-accept")).to_be_disabled()
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()
    expect(page.locator("#device-ok")).to_be_visible()
    page.locator("#start-exam").click()
    expect(page.locator("#question-prompt")).to_be_visible()


def test_alice_takes_reloads_and_submits_the_demo_exam(page):
    exam_id = _fresh_start("alice@example.com")
    login(page, "alice@example.com")
    page.wait_for_url("**/candidate")
    row = page.locator(".exam-row", has_text=DEMO_EXAM_TITLE)
    expect(row.locator(".exam-status")).to_have_text("Not started")
    row.get_by_role("button", name="Open").click()
    page.wait_for_url(f"**/candidate/exams/{exam_id}")

    consent = page.locator("#consent-text")
    for phrase in ["camera (video) and microphone (audio) are recorded", "every 60 seconds",
                   "proctors, supervisors and administrators", "deleted automatically 30 days",
                   "switch to another tab or window"]:
        expect(consent).to_contain_text(phrase)
    expect(consent).not_to_contain_text("Your screen is recorded")
    expect(page.locator("#consent-accept")).to_be_disabled()
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()

    # The pre-exam check with Chromium's fake camera and microphone.
    expect(page.locator("#device-ok")).to_be_visible()
    page.wait_for_function("document.querySelector('#device-preview')?.videoWidth > 0")
    page.wait_for_function("Number(document.querySelector('#mic-level')?.dataset.peak) > 0")
    attempt_id = _attempt("alice@example.com").id
    kinds = _event_kinds(attempt_id)
    assert kinds == ["consent_accepted", "device_check_passed"]
    with session_scope() as db:
        consent_event = db.exec(select(ProctoringEvent).where(
            ProctoringEvent.attempt_id == attempt_id, ProctoringEvent.kind == "consent_accepted")).one()
        check_event = db.exec(select(ProctoringEvent).where(
            ProctoringEvent.attempt_id == attempt_id, ProctoringEvent.kind == "device_check_passed")).one()
    assert "30 days" in consent_event.data["text"]
    assert check_event.data["width"] == 640 and check_event.data["height"] == 480

    # Where the question shows, in document coordinates, at every frame from the start on.
    page.evaluate("""() => {
        window.promptTops = new Set();
        const look = () => {
            const prompt = document.querySelector('#question-prompt');
            if (prompt) window.promptTops.add(prompt.getBoundingClientRect().top + window.scrollY);
            requestAnimationFrame(look);
        };
        look();
    }""")
    page.locator("#start-exam").click()
    expect(page.locator("#question-prompt")).to_have_text("Which planet is closest to the Sun?")
    started = _attempt("alice@example.com")
    assert started.status == AttemptStatus.in_progress
    # Same machine: the measured offset is the round trip's error, far below a second.
    assert abs(started.clock_offset_ms) < 1000
    expect(page.locator("#exam-clock")).to_have_text(re.compile(r"^(20:00|19:[0-5]\d)$"))

    page.get_by_role("radio", name="Mercury").click()
    expect(page.locator("#saved-note")).to_have_text("All answers saved")
    # The recording and live video started without moving the question under the pointer.
    expect(page.locator("#recording-indicator")).to_contain_text("Recording")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "on")
    assert len(page.evaluate("[...window.promptTops]")) == 1
    page.locator("#next-question").click()
    expect(page.locator("#question-prompt")).to_contain_text("kibibyte")
    page.get_by_role("radio", name="1024").click()
    page.locator("#next-question").click()
    page.locator("#answer-text").fill("So that everyone has the same time.")
    wait_for(lambda: len(_answers(attempt_id)) == 3)
    page.locator(".question-nav", has_text="4").click()
    expect(page.locator("#next-question")).to_be_disabled()
    page.get_by_role("radio", name="Carbon dioxide").click()
    expected = {"Mercury", "1024", "So that everyone has the same time.", "Carbon dioxide"}
    wait_for(lambda: set(_answers(attempt_id).values()) == expected)

    # A reload mid-exam: the same step, the same answers, the same deadline.
    page.reload()
    expect(page.locator("#question-prompt")).to_be_visible()
    assert _attempt("alice@example.com").deadline_at == started.deadline_at
    left_ms = (started.deadline_at - utcnow()).total_seconds() * 1000
    page.wait_for_function("document.querySelector('#exam-clock')?.dataset.counting === 'yes'")
    shown_ms = int(page.locator("#exam-clock").get_attribute("data-remaining-ms"))
    assert abs(shown_ms - left_ms) < 3000
    expect(page.locator(".question-nav.answered")).to_have_count(4)
    page.locator(".question-nav", has_text="1").click()
    expect(page.get_by_role("radio", name="Mercury")).to_be_checked()
    page.locator(".question-nav", has_text="3").click()
    expect(page.locator("#answer-text")).to_have_value("So that everyone has the same time.")
    assert "clock_synced" in _event_kinds(attempt_id)  # measured again after the reload

    page.locator("#submit-exam").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("You answered 4 of 4 questions")
    page.locator("#confirm-submit").click()
    expect(page.locator("#done-message")).to_contain_text("Submitted")
    ended = _attempt("alice@example.com")
    assert ended.status == AttemptStatus.submitted
    kinds = _event_kinds(attempt_id)
    for kind in ["exam_started", "question_viewed", "answer_saved", "submitted"]:
        assert kind in kinds
    assert kinds.count("answer_saved") == 4 and kinds[-1] == "submitted"
    assert "auto_submitted" not in kinds

    # Read-only afterwards, in the page and in the service, also after a reload.
    page.reload()
    expect(page.locator("#done-message")).to_contain_text("Submitted")
    expect(page.locator(".review-item")).to_have_count(4)
    expect(page.get_by_role("radio", name="Mercury")).to_be_checked()
    expect(page.get_by_role("radio", name="Mercury")).to_be_disabled()
    expect(page.get_by_role("radio", name="Venus")).to_be_disabled()
    expect(page.locator(".review-item textarea")).to_have_attribute("readonly", "")
    expect(page.locator("#submit-exam")).to_have_count(0)
    question_id = next(q for q, v in _answers(attempt_id).items() if v == "Mercury")
    with session_scope() as db, pytest.raises(AttemptError, match="closed"):
        attempts.save_answer(db, db.get(Attempt, attempt_id), question_id, "Venus")
    assert set(_answers(attempt_id).values()) == expected

    page.goto("/candidate")
    expect(page.locator(".exam-row", has_text=DEMO_EXAM_TITLE).locator(".exam-status")).to_have_text("Submitted")


def test_the_page_submits_by_itself_when_the_time_is_up(page):
    exam_id = _fresh_start("bob@example.com")
    sign_in(page, "bob@example.com")
    page.goto(f"/candidate/exams/{exam_id}")
    _pass_consent_and_check(page)
    page.goto("/candidate")
    row = page.locator(".exam-row", has_text=DEMO_EXAM_TITLE)
    expect(row.locator(".exam-status")).to_have_text(re.compile(r"^In progress, 19 min left$"))
    row.get_by_role("button", name="Continue").click()
    expect(page.locator("#question-prompt")).to_be_visible()
    attempt_id = _attempt("bob@example.com").id
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        attempt.deadline_at = utcnow() + timedelta(seconds=4)
        db.add(attempt)
    # Any answer shows the attempt as stored, with its new deadline.
    page.get_by_role("radio", name="Venus").click()
    expect(page.locator("#exam-clock")).to_have_text(re.compile(r"^0:0[0-4]$"))
    expect(page.locator("#done-message")).to_contain_text("Time is up", timeout=15000)
    ended = _attempt("bob@example.com")
    assert ended.status == AttemptStatus.submitted and ended.ended_at == ended.deadline_at
    kinds = _event_kinds(attempt_id)
    assert kinds.count("auto_submitted") == 1 and "submitted" not in kinds
    assert list(_answers(attempt_id).values()) == ["Venus"]


def test_a_candidate_cannot_open_an_exam_not_assigned_to_him(page):
    with session_scope() as db:
        other_exam_id = make_exam(db, title=f"Not for Bob {uuid.uuid4().hex[:6]}").id
    sign_in(page, "bob@example.com")
    page.goto(f"/candidate/exams/{other_exam_id}")
    expect(page.locator("#refused")).to_have_text("This exam is not assigned to you.")
    expect(page.locator("#consent-text")).to_have_count(0)
    page.goto("/candidate/exams/not-a-number")
    expect(page.locator("#refused")).to_have_text("There is no such exam.")
    with session_scope() as db:
        assert db.exec(select(Attempt).where(Attempt.exam_id == other_exam_id)).first() is None
    page.goto("/candidate")
    expect(page.locator(".exam-row", has_text="Not for Bob")).to_have_count(0)


def test_signed_out_visitors_sign_in_first_and_come_back_to_the_exam(page):
    exam_id = _fresh_start("carol@example.com")
    page.goto(f"/candidate/exams/{exam_id}")
    page.wait_for_url(f"**/login?next=/candidate/exams/{exam_id}")
    page.fill("#email", "carol@example.com")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"**/candidate/exams/{exam_id}")
    expect(page.locator("#consent-text")).to_be_visible()


@pytest.mark.parametrize("email, role", [(email, role) for email, _, role in DEMO_USERS[:4]])
def test_each_demo_role_signs_in_and_only_candidates_open_candidate_pages(page, email, role):
    exam_id, user_id = _ids(email)
    login(page, email)
    page.goto("/")
    page.wait_for_url(f"**{HOME_BY_ROLE[role]}")
    if role == Role.candidate:
        return
    for path in ["/candidate", f"/candidate/exams/{exam_id}"]:
        page.goto(path)
        page.wait_for_url("**/forbidden")
        expect(page.locator("#forbidden")).to_be_visible()
    with session_scope() as db:
        assert db.exec(select(Attempt).where(Attempt.candidate_id == user_id)).first() is None


@pytest.fixture
def prompting_browser(browser, fake_camera_y4m):
    """Chromium with the fake camera but without the flag that accepts every permission prompt:
    headless, a prompt nobody answers is a denial until the context grants the permission."""
    prompting = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={fake_camera_y4m}"])
    yield prompting
    prompting.close()


def test_a_denied_camera_is_explained_and_retry_recovers(prompting_browser, app_server):
    exam_id = _fresh_start("carol@example.com")
    context = prompting_browser.new_context(base_url=app_server.url)
    try:
        page = context.new_page()
        sign_in(page, "carol@example.com")
        page.goto(f"/candidate/exams/{exam_id}")
        page.locator("#consent-checkbox").click()
        page.locator("#consent-accept").click()
        expect(page.locator("#device-error")).to_contain_text("access was denied")
        expect(page.locator("#start-exam")).to_be_disabled()
        attempt = _attempt("carol@example.com")
        assert _event_kinds(attempt.id)[-1] == "device_check_failed"

        context.grant_permissions(["camera", "microphone"])
        page.locator("#device-retry").click()
        expect(page.locator("#device-ok")).to_be_visible()
        expect(page.locator("#device-error")).to_have_count(0)
        expect(page.locator("#start-exam")).to_be_enabled()
        assert _event_kinds(attempt.id)[-1] == "device_check_passed"
        assert _attempt("carol@example.com").status == AttemptStatus.not_started
    finally:
        context.close()
