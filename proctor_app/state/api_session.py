"""The candidate's page of an API session (/proctoring/[exam_id], opened by the launch link):
what it adds to the exam page's states (TakeExamState, ExamRecordingState), which it reuses: the
return URL, and noticing that the integrator ended the session (POST /api/v1/sessions/{id}/end)."""

import asyncio

import reflex as rx
from sqlmodel import select

from proctor_app.auth.roles import CANDIDATE
from proctor_app.db import session_scope
from proctor_app.models import ApiSession, AttemptStatus
from proctor_app.services import attempts
from proctor_app.services.attempts import AttemptError
from proctor_app.state.auth import AuthState, requires
from proctor_app.state.take_exam import TakeExamState

# How soon the page notices an end through the API (a read of one row per interval and page).
WATCH_INTERVAL_S = 3.0


class ApiSessionState(AuthState):
    return_url: str = ""
    _watching: bool = False

    def _attempt_status(self, user_id: int) -> str | None:
        """The attempt's status when it is the user's API session, else None."""
        try:
            with session_scope() as db:
                attempt = attempts.attempt_for_route(db, self.exam_id, user_id)
                session = db.exec(select(ApiSession).where(ApiSession.attempt_id == attempt.id)).first()
                if session is None:
                    return None
                self.return_url = session.return_url or ""
                return attempt.status
        except AttemptError:
            return None

    @requires(CANDIDATE)
    def on_load(self):
        self.return_url = ""
        status = self._attempt_status(self._user.id)
        if status is None:
            return rx.redirect("/forbidden")
        if status in (AttemptStatus.not_started, AttemptStatus.in_progress) and not self._watching:
            self._watching = True
            return ApiSessionState.watch

    @rx.event(background=True)
    async def watch(self):
        """While the session runs: once it ended elsewhere, the page shows it (and flushes)."""
        async with self:
            user = self._signed_in_user()
        try:
            while user is not None:
                await asyncio.sleep(WATCH_INTERVAL_S)
                async with self:
                    status = await asyncio.to_thread(self._attempt_status, user.id)
                if status in (None, AttemptStatus.submitted, AttemptStatus.expired):
                    yield TakeExamState.time_up
                    return
        finally:
            async with self:
                self._watching = False
