"""The live video part of the candidate's exam page (pages/take_exam.py): the publisher and a line
telling the candidate whether proctors can watch right now."""

import reflex as rx

from proctor_app.components.language import t
from proctor_app.components.live import live_publish
from proctor_app.state.exam_live import ExamLiveState as L
from proctor_app.state.exam_recording import ExamRecordingState as R


def live_panel() -> rx.Component:
    """Mounted while the exam runs; publishes only when live video is on for the exam."""
    return rx.box(
        rx.cond(
            (L.publish_url != "") & (R.upload_token != ""),
            rx.fragment(
                live_publish(url=L.publish_url, token=R.upload_token, screen=L.publish_screen,
                             rtc_config=L.rtc_config, audio=L.publish_audio,
                             on_status=L.on_status),
                # A live region: the candidate hears when the connection drops and comes back.
                rx.text(t("Live proctoring: {status}", status=L.status_text), size="2", color_scheme="gray",
                        id="live-status", role="status", custom_attrs={"data-status": L.status}),
            ),
        ),
        on_mount=L.prepare,
    )
