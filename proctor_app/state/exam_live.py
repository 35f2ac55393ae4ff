"""The live video part of the candidate's exam page: whether to publish, and what the publisher
reports. Publishing uses the upload token of the recording part (ExamRecordingState)."""

import reflex as rx

from proctor_app.auth.roles import CANDIDATE
from proctor_app.db import session_scope
from proctor_app.i18n import N_
from proctor_app.models import AttemptStatus, Exam
from proctor_app.runtime import ice_servers
from proctor_app.services import attempts
from proctor_app.services.attempts import AttemptError
from proctor_app.services.live import live_audio, live_streams
from proctor_app.state.auth import AuthState, requires

STATUS_TEXT = {"connecting": N_("connecting"), "live": N_("on"), "retrying": N_("reconnecting"),
               "refused": N_("not available"), "stopped": N_("off")}


class ExamLiveState(AuthState):
    # The WHIP endpoint of the candidate's attempt; "" when live video is off.
    publish_url: str = ""
    publish_screen: bool = False
    publish_audio: bool = False  # the microphone too
    # RTCPeerConnection's configuration, TURN credentials minted for this attempt.
    rtc_config: dict = {}
    status: str = ""

    @requires(CANDIDATE)
    def prepare(self):
        self.publish_url, self.publish_screen, self.publish_audio, self.status = "", False, False, ""
        try:
            with session_scope() as db:
                attempt = attempts.attempt_for_route(db, self.exam_id, self._user.id)
                exam = db.get(Exam, attempt.exam_id)
                streams, audio = live_streams(db, exam), live_audio(db, exam)
        except AttemptError:
            return
        if attempt.status == AttemptStatus.in_progress and streams:
            self.publish_url = f"/api/live/attempts/{attempt.id}/publish"
            self.publish_screen = "screen" in streams
            self.publish_audio = audio
            self.rtc_config = ice_servers.rtc_configuration(f"attempt:{attempt.id}")

    @requires(CANDIDATE)
    def on_status(self, report: dict):
        self.status = STATUS_TEXT.get(str(report.get("status", "")), "")

    @rx.var
    def status_text(self) -> str:
        return self._t(self.status) if self.status else ""
