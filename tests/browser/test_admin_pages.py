"""The admin pages for users and exams, driven in Chromium against the real app and database."""

import re
import uuid

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.models import AuditLog, Exam, ExamAssignment, QuestionKind, Role, User
from proctor_app.services import exam_admin
from tests.support.factories import make_user
from tests.support.pages import login, sign_in

pytestmark = pytest.mark.browser
ADMIN_PATHS = ["/admin/users", "/admin/exams", "/admin/exams/new"]


def _user(email: str) -> User:
    with session_scope() as db:
        return db.exec(select(User).where(User.email == email)).one()


def _login_url_for(path: str) -> re.Pattern:
    # Reflex may add a trailing slash to the path it reports.
    return re.compile(rf"/login\?next={re.escape(path)}/?$")


def _create_user_in_form(page, email: str, name: str, role: str, password: str) -> None:
    page.fill("#new-user-email", email)
    page.fill("#new-user-name", name)
    page.select_option("#new-user-role", role)
    page.fill("#new-user-password", password)
    page.click("#create-user")


def test_created_candidate_logs_in_until_reset_and_deactivated(page, browser, app_server):
    email, password, new_password = f"new-{uuid.uuid4().hex[:8]}@example.com", "fresh-pass-1", "reset-pass-2"
    login(page, "admin@example.com")
    page.wait_for_url("**/admin/users")

    _create_user_in_form(page, email.upper(), "Nina New", "candidate", "short")
    expect(page.locator("#users-error")).to_contain_text("at least 8 characters")
    _create_user_in_form(page, email.upper(), "Nina New", "candidate", password)
    expect(page.locator("#users-notice")).to_contain_text(f"Created {email} (candidate)")
    user = _user(email)
    assert (user.name, user.role, user.active) == ("Nina New", "candidate", True)
    expect(page.locator(f"#user-{user.id}")).to_contain_text(email)
    _create_user_in_form(page, email, "Nina Again", "proctor", password)
    expect(page.locator("#users-error")).to_contain_text("already exists")

    candidate_context = browser.new_context(base_url=app_server.url)
    try:
        candidate = candidate_context.new_page()
        login(candidate, email, password)
        assert candidate.url.endswith("/candidate")
        # A signed-in candidate is forbidden here; once the session is gone it is sent to log in.
        candidate.goto("/admin/users")
        candidate.wait_for_url("**/forbidden")

        page.click(f"#reset-{user.id}")
        page.fill("#reset-password", "short")
        page.click("#reset-submit")
        expect(page.locator("#reset-error")).to_contain_text("at least 8 characters")
        page.fill("#reset-password", new_password)
        page.click("#reset-submit")
        expect(page.locator("#users-notice")).to_contain_text(f"New password set for {email}")
        candidate.goto("/admin/users")
        candidate.wait_for_url(_login_url_for("/admin/users"))
        login(candidate, email, new_password)
        candidate.goto("/admin/users")
        candidate.wait_for_url("**/forbidden")

        page.click(f"#deactivate-{user.id}")
        expect(page.locator(f"#active-{user.id}")).to_have_text("deactivated")
        candidate.goto("/admin/users")
        candidate.wait_for_url(_login_url_for("/admin/users"))
        candidate.fill("#email", email)
        candidate.fill("#password", new_password)
        candidate.click("#login-submit")
        expect(candidate.locator("#login-error")).to_contain_text("deactivated")
    finally:
        candidate_context.close()


def test_logging_out_everywhere_ends_the_other_sessions_too(page, browser, app_server):
    """From the top bar for oneself, and from the users page for someone else."""
    with session_scope() as db:
        user = make_user(db, role=Role.proctor, password=DEMO_PASSWORD)
        email, user_id = user.email, user.id
    contexts = [browser.new_context(base_url=app_server.url) for _ in range(2)]
    try:
        laptop, phone = [ctx.new_page() for ctx in contexts]
        for device in (laptop, phone):
            login(device, email)
        laptop.click("#logout-everywhere")
        laptop.wait_for_url("**/login")
        phone.goto("/attempts")
        phone.wait_for_url(_login_url_for("/attempts"))

        login(phone, email)
        sign_in(page, "admin@example.com")
        page.goto(f"/admin/users?q={email}")
        page.click(f"#logout-all-{user_id}")
        expect(page.locator("#users-notice")).to_contain_text(f"{email} is logged out everywhere")
        phone.goto("/attempts")
        phone.wait_for_url(_login_url_for("/attempts"))
    finally:
        for ctx in contexts:
            ctx.close()
    with session_scope() as db:
        actions = db.exec(select(AuditLog.user_id).where(AuditLog.action == "sessions_revoked",
                                                         AuditLog.target == f"user:{user_id}")).all()
    assert actions == [user_id, _user("admin@example.com").id]


def test_admin_cannot_deactivate_or_demote_themself_in_the_page(page):
    login(page, "admin@example.com")
    me = _user("admin@example.com")
    expect(page.locator(f"#deactivate-{me.id}")).to_be_disabled()
    expect(page.locator(f"#role-{me.id}")).to_be_disabled()


def test_admin_builds_an_exam_with_questions_and_assigns_alice(page):
    title = f"Browser exam {uuid.uuid4().hex[:6]}"
    sign_in(page, "admin@example.com")
    page.goto("/admin/exams")
    page.click("#new-exam")
    page.wait_for_url("**/admin/exams/new")
    expect(page.locator("#exam-recording")).to_be_checked()  # default from the settings
    expect(page.locator("#exam-snapshots")).to_be_checked()

    page.fill("#exam-title", title)
    page.fill("#exam-duration", "601")
    page.click("#save-exam")
    expect(page.locator("#exam-error")).to_contain_text("between 1 and 600")
    with session_scope() as db:
        assert db.exec(select(Exam).where(Exam.title == title)).first() is None

    page.fill("#exam-duration", "25")
    page.click("#exam-screen_recording")
    page.click("#exam-snapshots")
    page.click("#save-exam")
    page.wait_for_url(re.compile(r"/admin/exams/\d+$"))
    exam_id = int(page.url.rsplit("/", 1)[1])
    with session_scope() as db:
        exam = db.get(Exam, exam_id)
    assert (exam.title, exam.duration_minutes, exam.screen_recording, exam.snapshots) == (title, 25, True, False)

    page.fill("#question-prompt", "Which colour is the sky?")
    page.fill("#question-options", "Green")
    page.click("#save-question")
    expect(page.locator("#question-error")).to_contain_text("at least 2 options")
    page.fill("#question-options", "Green\n Blue \n\nRed")
    page.click("#save-question")
    expect(page.locator("#exam-notice")).to_have_text("Question added.")
    page.select_option("#question-kind", "free_text")
    expect(page.locator("#question-options")).to_have_count(0)
    page.fill("#question-prompt", "Describe your morning.")
    page.click("#save-question")
    expect(page.get_by_text("Describe your morning.")).to_be_visible()

    alice = _user("alice@example.com")
    page.click(f"#assign-{alice.id}")
    page.click("#save-assignments")
    expect(page.locator("#exam-notice")).to_have_text("Assignments saved.")

    with session_scope() as db:
        questions = exam_admin.list_questions(db, exam_id)
        assigned = db.exec(select(ExamAssignment.user_id).where(ExamAssignment.exam_id == exam_id)).all()
    assert [(q.kind, q.prompt, q.options) for q in questions] == [
        (QuestionKind.single_choice, "Which colour is the sky?", ["Green", "Blue", "Red"]),
        (QuestionKind.free_text, "Describe your morning.", [])]
    assert assigned == [alice.id]

    page.click(f"#question-up-{questions[1].id}")
    expect(page.locator("#exam-notice")).to_have_text("Order saved.")
    page.click(f"#question-edit-{questions[0].id}")
    expect(page.locator("#question-options")).to_have_value("Green\nBlue\nRed")
    page.fill("#question-prompt", "Which colour is a clear sky?")
    page.click("#save-question")
    expect(page.locator(f"#question-prompt-{questions[0].id}")).to_have_text("Which colour is a clear sky?")
    with session_scope() as db:
        reordered = exam_admin.list_questions(db, exam_id)
    assert [(q.id, q.prompt) for q in reordered] == [
        (questions[1].id, "Describe your morning."), (questions[0].id, "Which colour is a clear sky?")]

    page.goto("/admin/exams")
    expect(page.locator(f"#exam-{exam_id}")).to_contain_text(title)
    for missing in ("999999", "99999999999999999999999", "abc"):
        page.goto(f"/admin/exams/{missing}")
        expect(page.locator("#exam-not-found")).to_have_text(f"There is no exam with id {missing}.")


@pytest.mark.parametrize("email", ["alice@example.com", "proctor@example.com", "supervisor@example.com"])
def test_other_roles_are_forbidden(page, email):
    login(page, email)
    for path in ADMIN_PATHS:
        page.goto(path)
        page.wait_for_url("**/forbidden")
        expect(page.locator("#forbidden")).to_be_visible()


def test_anonymous_visitors_are_sent_to_login(page):
    for path in ADMIN_PATHS:
        page.goto(path)
        page.wait_for_url(_login_url_for(path))


def test_handlers_check_the_role_again(page, browser, app_server):
    """An admin demoted while the page is open cannot use it any more: the next click is refused."""
    login(page, "admin@example.com")
    email, password = f"admin2-{uuid.uuid4().hex[:8]}@example.com", "second-admin-1"
    _create_user_in_form(page, email, "Second Admin", "admin", password)
    expect(page.locator("#users-notice")).to_contain_text(email)
    second = _user(email)

    other_context = browser.new_context(base_url=app_server.url)
    try:
        other = other_context.new_page()
        login(other, email, password)
        # The page has loaded (its on_load ran) while the role was still admin.
        other.goto(f"/admin/users?q={email}")
        expect(other.locator(f"#user-{second.id}")).to_be_visible()
        page.select_option(f"#role-{second.id}", "supervisor")
        expect(page.locator("#users-notice")).to_contain_text(f"{email} is now a supervisor")

        victim = f"never-{uuid.uuid4().hex[:8]}@example.com"
        _create_user_in_form(other, victim, "Never Created", "candidate", password)
        # The role change ended the session: sent to sign in again (as a supervisor now).
        other.wait_for_url(_login_url_for("/admin/users"))
        with session_scope() as db:
            assert db.exec(select(User).where(User.email == victim)).first() is None
    finally:
        other_context.close()


def test_the_users_list_is_searched_and_paged(page):
    """However many accounts there are, the page shows 50 at a time and finds one by name or email."""
    tag = uuid.uuid4().hex[:8]
    with session_scope() as db:
        made = [make_user(db, email=f"paged-{tag}-{n:02d}@example.com", name=f"Paged {tag} {n:02d}")
                for n in range(55)]
        last_id = made[-1].id
    sign_in(page, "admin@example.com")
    page.goto(f"/admin/users?q=paged-{tag}")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 2 (55 users)")
    expect(page.locator("#users-table tbody tr")).to_have_count(50)
    expect(page.locator("#page-prev")).to_be_disabled()
    page.click("#page-next")
    expect(page.locator("#page-info")).to_have_text("Page 2 of 2 (55 users)")
    expect(page.locator("#users-table tbody tr")).to_have_count(5)
    expect(page.locator(f"#user-{last_id}")).to_be_visible()

    # By name, case-insensitively, from the search box.
    page.fill("#users-search", f"PAGED {tag} 07")
    page.click("#users-search-submit")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 1 (1 user)")
    expect(page.locator("#users-table")).to_contain_text(f"paged-{tag}-07@example.com")
