"""The recording parts of the candidate's exam page (pages/take_exam.py): the recorder (which shows
the recording indicator, upload status and upload progress itself, so they work offline), the
warning or blocking dialog when recording fails, the way out once the upload is done, and the
notice when the exam is open in another tab, window or device."""

import reflex as rx

from proctor_app.components.language import t
from proctor_app.components.recorder import exam_recorder, exam_tab_guard
from proctor_app.state.locale import LocaleState
from proctor_app.state.exam_recording import ExamRecordingState as R


def _blocking_dialog() -> rx.Component:
    """Required recording that does not work stops the exam until it works again (the time runs)."""
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(t("This exam must be recorded")),
            rx.alert_dialog.description(R.message, id="recording-blocked-message"),
            rx.hstack(
                rx.button(t("Exit"), variant="soft", color_scheme="gray", on_click=rx.redirect("/candidate"),
                          id="recording-exit"),
                # Called straight from the click, so a new screen share has the candidate's gesture.
                rx.button(t("Retry"), on_click=rx.call_script("window.proctorRecorder?.retry()"),
                          id="recording-retry"),
                justify="end", spacing="3", margin_top="1em",
            ),
        ),
        open=R.blocked,
    )


def _open_elsewhere() -> rx.Component:
    """Neither records nor publishes until the candidate moves the exam here."""
    return rx.callout.root(
        rx.callout.text(rx.cond(R.elsewhere == "moved", t("This exam is now open in another tab or window."),
                                t("This exam is already open in another tab or window.")),
                        " ", t("Continue there, or use this one instead: the other stops recording."),
                        id="open-elsewhere-message"),
        # Called straight from the click: the lock is taken from the other tab in this browser.
        rx.button(t("Use this tab instead"), on_click=rx.call_script("window.proctorTabGuard?.takeOver()"),
                  id="use-this-tab", width="fit-content"),
        color_scheme="amber", id="open-elsewhere", margin_bottom="1em",
    )


def recording_panel(step: rx.Var[str], question_id: rx.Var[int], answer: rx.Var[str],
                    proctored: rx.Var[bool]) -> rx.Component:
    """Mounted while the exam runs and after it (the flush); `step` is the exam page's step.

    The recorder holds its line above the questions from the moment they show, before its token
    comes: the questions never move under the candidate's pointer when the recording starts."""
    recorder = exam_recorder(
        attempt_id=R.attempt_id, upload_token=R.upload_token, streams=R.streams, required=R.required,
        active=step == "exam", next_segment=R.next_segment, next_snapshot_seq=R.next_snapshot_seq,
        chunk_interval_s=R.chunk_interval_s, camera_bitrate_kbps=R.camera_bitrate_kbps,
        screen_bitrate_kbps=R.screen_bitrate_kbps, snapshot_interval_s=R.snapshot_interval_s,
        camera_resolution=R.camera_resolution, screen_resolution=R.screen_resolution,
        screen_frame_rate=R.screen_frame_rate,
        clock_offset_ms=R.clock_offset_ms, question_id=question_id, answer_key=answer,
        lang=LocaleState.lang, messages=LocaleState.texts, on_status=R.on_status,
    )
    # Any proctored exam has a token: its browser events (and snapshots) are captured whatever the
    # video flags. Until it comes, the recorder shows that the recording is starting.
    shown = (R.upload_token != "") | ((step == "exam") & proctored & (R.elsewhere == ""))
    return rx.cond(
        (step == "exam") | (step == "done"),
        rx.box(
            rx.cond(shown, rx.fragment(
                # The indicator's line and margin (recorder_view.js), kept while the recorder's
                # module loads: a client-side component shows nothing at its first render.
                rx.box(recorder, min_height=rx.cond(step == "exam", "calc(var(--line-height-3) + 1rem)", "0"),
                       display="flow-root"),
                rx.cond((step == "exam") & (R.warning != ""),
                        # Announced at once: the candidate learns that recording stopped working.
                        rx.callout(R.warning, color_scheme="orange", id="recording-warning",
                                   role="alert", margin_bottom="1em")),
                rx.cond((step == "done") & R.flushed,
                        rx.link(t("Back to my exams"), href="/candidate", id="flush-leave")),
                _blocking_dialog(),
            )),
            exam_tab_guard(on_event=R.tab_event),
            rx.cond(R.elsewhere != "", _open_elsewhere()),
            width="100%",
        ),
    )
