"""A candidate taking an exam of its own in Chromium: the exam, the start (consent, device check)
and the submit, and what the browser recorded of it."""

import uuid

from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.models import Attempt, ProctoringEvent
from tests.support.factories import assign, make_exam, make_user
from tests.support.pages import sign_in

# Makes getUserMedia refuse while window.__denyCamera is set, as a browser does when the candidate
# blocks the camera (the fake-UI flag otherwise grants every request).
DENY_CAMERA_SWITCH = """
const realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => window.__denyCamera
  ? Promise.reject(new DOMException("Permission denied", "NotAllowedError"))
  : realGetUserMedia(constraints);
"""


def candidate_with_exam(**flags) -> tuple[str, int]:
    """A candidate of the test's own with an exam of its own (2 questions), so tests never share.
    Records the camera, required, without live video, unless `flags` say otherwise."""
    tag = uuid.uuid4().hex[:10]
    with session_scope() as db:
        user = make_user(db, email=f"rec-{tag}@example.com", name=f"Rec {tag}", password=DEMO_PASSWORD)
        exam = make_exam(db, title=f"Recording test {tag}", duration_minutes=20,
                         questions=[dict(position=0, prompt="Pick one", options=["yes", "no"]),
                                    dict(position=1, prompt="Pick again", options=["up", "down"])],
                         **{"live_video": False, "recording": True, "recording_required": True, **flags})
        assign(db, exam, user)
        return user.email, exam.id


def start_exam(page, email: str, exam_id: int, device_check: bool = True) -> int:
    """Signs in, accepts the consent, passes the device check (when the exam has one), starts."""
    sign_in(page, email)
    page.goto(f"/candidate/exams/{exam_id}")
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()
    if device_check:
        # The fake camera can take a while to start on a loaded machine.
        expect(page.locator("#device-ok")).to_be_visible(timeout=30_000)
    page.locator("#start-exam").click()
    expect(page.locator("#question-prompt")).to_be_visible()
    with session_scope() as db:
        return db.exec(select(Attempt.id).where(Attempt.exam_id == exam_id)).one()


def submit(page) -> None:
    page.locator("#submit-exam").click()
    page.locator("#confirm-submit").click()
    expect(page.locator("#done-message")).to_be_visible()


def events(attempt_id: int) -> list[ProctoringEvent]:
    with session_scope() as db:
        return db.exec(select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt_id)
                       .order_by(ProctoringEvent.id)).all()


def kinds(attempt_id: int) -> list[str]:
    return [e.kind for e in events(attempt_id)]
