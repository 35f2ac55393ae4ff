"""The candidate's page of an API session (/proctoring/[exam_id]): the exam page's consent, device
check and recorder, but no questions: it stays open beside the exam taken elsewhere, and goes back
to the integrator's return URL once the session ended and its recording is uploaded."""

import reflex as rx

from proctor_app.components.confirm import confirmed_button
from proctor_app.components.exam_clock import exam_clock
from proctor_app.components.language import t
from proctor_app.pages.exam_live import live_panel
from proctor_app.pages.exam_recording import recording_panel
from proctor_app.pages.layout import page_frame
from proctor_app.pages.take_exam import check_step, consent_step
from proctor_app.state.api_session import ApiSessionState as P
from proctor_app.state.exam_recording import ExamRecordingState as R
from proctor_app.state.take_exam import TakeExamState as S


def _end_button() -> rx.Component:
    return confirmed_button(
        t("End the session"), title=t("End the proctoring session?"),
        description=t("The recording stops and cannot be started again."),
        keep=t("Keep recording"), confirm=t("End"), color_scheme="red", on_confirm=S.submit,
        id="end-session", confirm_id="confirm-end-session")


def _header() -> rx.Component:
    # Mounted from the check step on: the clock it measures is the one the start records.
    return rx.hstack(
        rx.text(t("Time left"), color_scheme="gray"),
        exam_clock(deadline_ms=S.deadline_ms, duration_s=S.duration_s, label=t("Time left"),
                   on_sync=S.clock_sync, on_expire=S.time_up),
        rx.spacer(),
        rx.cond(S.step == "exam", _end_button()),
        align="center", width="100%", margin_bottom="1em",
    )


def _session_step() -> rx.Component:
    return rx.flex(
        rx.card(rx.text(t("Proctoring is on. Keep this page open while you take your exam in the other "
                          "window."), id="session-running"), flex="1", min_width="20em"),
        live_panel(), gap="1em", wrap="wrap", width="100%")


def _done_step() -> rx.Component:
    return rx.vstack(
        rx.callout(t("The proctoring session has ended."), color_scheme="green", id="session-ended"),
        # Back to the integrator once what was recorded here is uploaded.
        rx.cond(P.return_url != "", rx.link(t("Continue"), href=P.return_url, id="return-link")),
        rx.cond(R.flushed & (P.return_url != ""), rx.box(on_mount=rx.redirect(P.return_url))),
        width="100%",
    )


def api_session_page() -> rx.Component:
    return page_frame(
        rx.cond(S.notice != "", rx.callout(S.notice, color_scheme="red", id="notice")),
        recording_panel(S.step, S.current.id, S.current.answer, S.proctored),
        rx.match(
            S.step,
            ("", rx.spinner()),
            ("refused", rx.callout(S.refusal, color_scheme="red", id="refused")),
            ("consent", consent_step()),
            ("done", _done_step()),
            rx.box(_header(), rx.cond(S.step == "check", check_step(), _session_step()), width="100%"),
        ),
        title=t("Proctoring session"),
        language=S.redraw,
    )
