"""A candidate whose browser is Spanish in Madrid: the exam flow in Spanish with Madrid times, the
switch back to English (remembered), and reviewers' times in their own zone with UTC on hover."""

from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import Attempt, AttemptStatus, ProctoringEvent, User
from tests.support.exam_pages import candidate_with_exam, kinds
from tests.support.factories import assign, make_attempt, make_exam
from tests.support.pages import login, sign_in

pytestmark = pytest.mark.browser

# 08:00 UTC in January is 09:00 in Madrid (CET).
PAST_START = datetime(2026, 1, 15, 8, 0, tzinfo=timezone.utc)
PAST_END = datetime(2026, 1, 15, 8, 20, tzinfo=timezone.utc)
# The machine may be loaded: each step may take long; none is timed.
WAIT_MS = 30_000


@pytest.fixture
def madrid(browser, app_server):
    ctx = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"],
                              locale="es-ES", timezone_id="Europe/Madrid")
    ctx.set_default_timeout(30000)
    yield ctx
    ctx.close()


def _with_past_attempt(email: str) -> str:
    """A second exam of the candidate's, taken on PAST_START; its title."""
    with session_scope() as db:
        user = db.exec(select(User).where(User.email == email)).one()
        exam = make_exam(db, title=f"Past exam {user.id}", duration_minutes=20)
        assign(db, exam, user)
        make_attempt(db, exam, user, status=AttemptStatus.submitted, consent_at=PAST_START,
                     started_at=PAST_START, deadline_at=PAST_END, ended_at=PAST_END)
        return exam.title


def _switch_to(page, name: str) -> None:
    page.locator("#language-switch").click()
    page.get_by_role("option", name=name).click()


def test_a_spanish_browser_in_madrid_takes_the_exam_in_spanish(madrid):
    email, exam_id = candidate_with_exam()
    past_title = _with_past_attempt(email)
    page = madrid.new_page()
    # Signing in speaks Spanish too, the server's errors included.
    page.goto("/login")
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible(timeout=WAIT_MS)
    page.fill("#email", email)
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Correo electrónico o contraseña incorrectos.",
                                                      timeout=WAIT_MS)
    login(page, email)
    page.wait_for_url("**/candidate")

    # The home page: Spanish, and the past attempt at its Madrid time (UTC on hover).
    expect(page.get_by_role("heading", name="Mis exámenes")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("html")).to_have_attribute("lang", "es", timeout=WAIT_MS)
    past = page.locator(".exam-row", has_text=past_title)
    expect(past.locator(".exam-status")).to_have_text("Entregado", timeout=WAIT_MS)
    started = past.locator(".exam-started time")
    expect(started).to_have_text("15 ene 2026, 9:00", timeout=WAIT_MS)
    expect(started).to_have_attribute("title", "15 ene 2026, 8:00 UTC", timeout=WAIT_MS)
    expect(past.locator(".exam-ended time")).to_have_text("15 ene 2026, 9:20", timeout=WAIT_MS)
    row = page.locator(".exam-row", has_text="Recording test")
    expect(row.locator(".exam-status")).to_have_text("Sin empezar", timeout=WAIT_MS)
    expect(row).to_contain_text("20 min", timeout=WAIT_MS)
    row.get_by_role("button", name="Abrir").click()
    page.wait_for_url(f"**/candidate/exams/{exam_id}")

    # Consent: the terms in Spanish, and the Spanish text is the one stored as accepted.
    expect(page.get_by_role("heading", name="Grabación y privacidad")).to_be_visible(timeout=WAIT_MS)
    consent = page.locator("#consent-text")
    for phrase in ("Tu cámara (vídeo) y tu micrófono (audio) se graban", "cada 60 segundos",
                   "se eliminan automáticamente 30 días"):
        expect(consent).to_contain_text(phrase, timeout=WAIT_MS)
    page.get_by_text("Lo he leído y estoy de acuerdo.").click()
    page.get_by_role("button", name="Aceptar y continuar").click()

    # Device check and start.
    expect(page.get_by_role("heading", name="Comprueba tu cámara y tu micrófono")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#device-ok")).to_have_text("La cámara y el micrófono funcionan.", timeout=WAIT_MS)
    expect(page.locator("#mic-level").locator("..")).to_have_attribute("aria-label", "Nivel del micrófono",
                                                                       timeout=WAIT_MS)
    page.get_by_role("button", name="Empezar el examen").click()

    # The running exam: questions, clock, recorder and saving in Spanish.
    expect(page.get_by_text("Pregunta 1 de 2")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#exam-clock")).to_have_attribute("aria-label", "Tiempo restante", timeout=WAIT_MS)
    expect(page.locator("#recording-indicator")).to_contain_text("Grabando", timeout=WAIT_MS)
    page.get_by_role("radio", name="yes").click()
    expect(page.locator("#saved-note")).to_have_text("Todas las respuestas guardadas", timeout=WAIT_MS)

    # Submit.
    page.get_by_role("button", name="Entregar").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("Has respondido 1 de 2 preguntas.", timeout=WAIT_MS)
    page.locator("#confirm-submit").click()
    expect(page.locator("#done-message")).to_have_text(
        "Entregado. Tus respuestas están guardadas y ya no pueden cambiar.", timeout=WAIT_MS)
    assert _accepted_consent(exam_id).startswith("Tu cámara (vídeo) y tu micrófono (audio)")

    # Back to English with the switch: this page at once, and every page after, reloads included.
    _switch_to(page, "English")
    expect(page.locator("#done-message")).to_have_text(
        "Submitted. Your answers are saved and can no longer change.", timeout=WAIT_MS)
    page.goto("/candidate")
    expect(page.get_by_role("heading", name="My exams")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("html")).to_have_attribute("lang", "en", timeout=WAIT_MS)
    past = page.locator(".exam-row", has_text=past_title)
    expect(past.locator(".exam-status")).to_have_text("Submitted", timeout=WAIT_MS)
    expect(past.locator(".exam-started time")).to_have_text("Jan 15, 2026, 9:00 AM", timeout=WAIT_MS)
    page.reload()
    expect(page.get_by_role("heading", name="My exams")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#language-switch")).to_have_text("English", timeout=WAIT_MS)


def _accepted_consent(exam_id: int) -> str:
    with session_scope() as db:
        attempt_id = db.exec(select(Attempt.id).where(Attempt.exam_id == exam_id)).one()
        assert "submitted" in kinds(attempt_id)
        accepted = db.exec(select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt_id,
                                                         ProctoringEvent.kind == "consent_accepted")).one()
        return accepted.data["text"]


def test_the_attempts_list_shows_times_in_the_viewers_zone_with_utc_on_hover(madrid):
    email, _ = candidate_with_exam()
    past_title = _with_past_attempt(email)
    page = madrid.new_page()
    sign_in(page, "supervisor@example.com")
    page.goto("/attempts")
    page.fill("#filter-search", email)
    page.click("#search-submit")
    row = page.locator(".attempt-row", has_text=past_title)
    started = row.locator(".attempt-started time")
    # The browser's own language (Spanish here): the reviewers' pages are not translated, their times are local.
    expect(started).to_have_text("15 ene 2026, 9:00", timeout=WAIT_MS)
    expect(started).to_have_attribute("title", "15 ene 2026, 8:00 UTC", timeout=WAIT_MS)
    expect(started).to_have_attribute("datetime", "2026-01-15T08:00:00Z", timeout=WAIT_MS)
    expect(row.locator(".attempt-ended time")).to_have_text("15 ene 2026, 9:20", timeout=WAIT_MS)
