"""The candidate's exam page. Which step shows is decided by the server (TakeExamState.step)."""

import reflex as rx

from proctor_app.components.device_check import device_check
from proctor_app.components.confirm import confirmed_button
from proctor_app.components.exam_clock import exam_clock
from proctor_app.components.language import t
from proctor_app.pages.exam_live import live_panel
from proctor_app.pages.exam_recording import recording_panel
from proctor_app.pages.layout import page_frame
from proctor_app.state.locale import LocaleState
from proctor_app.state.take_exam import NavItem, QuestionView, TakeExamState as S

FREE_TEXT_SAVE_DELAY_MS = 800


def _notice() -> rx.Component:
    return rx.cond(S.notice != "", rx.callout(S.notice, color_scheme="red", id="notice", role="alert"))


def consent_step() -> rx.Component:
    return rx.card(rx.vstack(
        rx.heading(t("Recording and privacy"), size="4"),
        rx.cond(S.exam_description != "", rx.text(S.exam_description, color_scheme="gray")),
        rx.unordered_list(rx.foreach(S.consent, rx.list_item), id="consent-text"),
        rx.checkbox(t("I have read this and I agree."), checked=S.consent_checked,
                    on_change=S.set_consent_checked, id="consent-checkbox"),
        rx.button(t("Accept and continue"), on_click=S.accept_consent, disabled=~S.consent_checked,
                  id="consent-accept"),
        spacing="3", align="start",
    ))


def _device_status() -> rx.Component:
    return rx.match(
        S.device_status,
        ("ok", rx.callout(t("Camera and microphone work."), color_scheme="green", id="device-ok")),
        ("failed", rx.vstack(
            rx.callout(S.device_error, color_scheme="red", id="device-error"),
            rx.button(t("Retry"), on_click=S.retry_devices, id="device-retry"),
            rx.cond(~S.devices_required,
                    rx.text(t("This exam can also be taken without them."), size="2")),
        )),
        rx.text(t("Waiting for the camera and microphone..."), color_scheme="gray"),
    )


def check_step() -> rx.Component:
    blocked = ~S.clock_synced | (S.uses_camera & S.devices_required & (S.device_status != "ok"))
    return rx.card(rx.vstack(
        rx.heading(t("Check your camera and microphone"), size="4"),
        rx.cond(
            S.uses_camera,
            rx.vstack(
                rx.text(t("Allow the browser to use your camera and microphone. You should see "
                          "yourself below, and the bar should move when you speak.")),
                device_check(round=S.device_round, on_result=S.device_result, messages=LocaleState.texts),
                _device_status(),
            ),
            rx.text(t("This exam does not use your camera or microphone: there is nothing to check."),
                    id="no-devices-needed"),
        ),
        rx.cond(S.records_screen,
                rx.callout(t("This exam records your screen. When the browser asks what to share, "
                             "choose your entire screen; tick \"Share audio\" (Chrome, Edge) to include "
                             "the sound it plays. Once recording, the indicator says whether the sound "
                             "is shared."), id="screen-audio-note", size="1")),
        rx.text(t("The time starts when you press Start."), size="2", color_scheme="gray"),
        rx.button(t("Start the exam"), on_click=S.start_exam, disabled=blocked, id="start-exam"),
        spacing="3", align="start",
    ))


def _submit_button() -> rx.Component:
    return confirmed_button(
        t("Submit"), title=t("Submit your answers?"),
        description=t("You answered {answered} of {total} questions. After submitting you cannot change "
                      "your answers.", answered=S.answered_count, total=S.nav.length()),
        keep=t("Keep working"), confirm=t("Submit"), color_scheme="green", on_confirm=S.submit,
        id="submit-exam", confirm_id="confirm-submit")


def exam_header() -> rx.Component:
    """Time left (and, during the exam, the save state and Submit); the clock stays mounted from
    the check step into the exam, so the offset it measured is the one the start records."""
    return rx.hstack(
        rx.text(t("Time left"), color_scheme="gray"),
        exam_clock(deadline_ms=S.deadline_ms, duration_s=S.duration_s, label=t("Time left"),
                   on_sync=S.clock_sync, on_expire=S.time_up),
        rx.spacer(),
        rx.cond(S.step == "exam", rx.hstack(
            rx.text(S.saved_note, size="2", color_scheme="gray", id="saved-note"),
            _submit_button(),
            align="center", spacing="4",
        )),
        align="center", width="100%", margin_bottom="1em",
    )


def _nav_button(item: NavItem) -> rx.Component:
    return rx.button(
        item.label,
        on_click=S.go_to(item.index),
        variant=rx.cond(item.index == S.index, "solid", rx.cond(item.answered, "soft", "outline")),
        class_name=rx.cond(item.answered, "question-nav answered", "question-nav"),
        size="2",
    )


def _answer_input() -> rx.Component:
    question = S.current
    return rx.cond(
        question.kind == "single_choice",
        rx.radio_group(question.options, value=question.answer, on_change=S.choose,
                       direction="column", id="answer-choice"),
        rx.text_area(value=question.answer, key=question.id, id="answer-text", rows="6", width="100%",
                     placeholder=t("Type your answer; it is saved as you write."),
                     debounce_timeout=FREE_TEXT_SAVE_DELAY_MS,
                     on_change=lambda value: S.save_text(question.id, value)),
    )


def question_panel() -> rx.Component:
    last = S.nav.length() - 1
    return rx.card(rx.vstack(
        rx.hstack(rx.foreach(S.nav, _nav_button), wrap="wrap", spacing="2", id="question-nav"),
        rx.text(t("Question {number} of {total}", number=S.current.number, total=S.nav.length()),
                color_scheme="gray", size="2"),
        rx.text(S.current.prompt, size="4", weight="medium", id="question-prompt"),
        _answer_input(),
        rx.hstack(
            rx.button(t("Previous"), on_click=S.previous_question, disabled=S.index == 0,
                      variant="soft", id="previous-question"),
            rx.button(t("Next"), on_click=S.next_question, disabled=S.index >= last, variant="soft",
                      id="next-question"),
            spacing="3",
        ),
        spacing="4", align="start", width="100%",
    ), flex="1", min_width="20em")


def exam_step() -> rx.Component:
    # Recording and live components are further children of this row, next to the questions.
    return rx.flex(question_panel(), live_panel(), gap="1em", wrap="wrap", width="100%")


def _review_item(question: QuestionView) -> rx.Component:
    return rx.card(rx.vstack(
        rx.text(question.number, ". ", question.prompt, weight="medium"),
        rx.cond(
            question.kind == "single_choice",
            rx.radio_group(question.options, value=question.answer, disabled=True, direction="column"),
            rx.text_area(value=question.answer, read_only=True, width="100%"),
        ),
        align="start", width="100%",
    ), class_name="review-item", width="100%")


def done_step() -> rx.Component:
    return rx.vstack(
        rx.callout(rx.cond(S.auto_submitted, t("Time is up: your answers were submitted automatically."),
                           t("Submitted. Your answers are saved and can no longer change.")),
                   color_scheme="green", id="done-message"),
        rx.foreach(S.review, _review_item),
        spacing="3", width="100%",
    )


def take_exam_page() -> rx.Component:
    return page_frame(
        _notice(),
        # Outside the steps: it keeps recording across the exam and flushes after the submit.
        recording_panel(S.step, S.current.id, S.current.answer, S.proctored),
        rx.match(
            S.step,
            ("", rx.spinner()),
            ("refused", rx.callout(S.refusal, color_scheme="red", id="refused")),
            ("consent", consent_step()),
            ("done", done_step()),
            # check and exam share one branch, so the clock in the header is never remounted.
            rx.box(exam_header(), rx.cond(S.step == "check", check_step(), exam_step()), width="100%"),
        ),
        title=rx.cond(S.exam_title != "", S.exam_title, t("Exam")),
        language=S.redraw,
    )
