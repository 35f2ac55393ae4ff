"""The recording part of the candidate's exam page: the upload grant, and what the recorder reports.

The take-exam page mounts the recorder while its step is the exam (recording) or done (flushing),
behind a tab guard (assets/exam_tab_guard.js): once this tab holds the browser's lock on the exam,
`tab_event` claims the attempt for the page, so a reload, a reconnect after a server restart and
the start of the exam each get a fresh token and the numbers to continue from. A second tab or
window, or another device, is told the exam is open elsewhere and neither records nor publishes
until the candidate moves the exam to it; the page it moved from then stops.
"""

import re

from proctor_app.auth.roles import CANDIDATE
from proctor_app.db import session_scope
from proctor_app.models import Exam
from proctor_app.services import attempts
from proctor_app.services.attempts import AttemptError
from proctor_app.services.consent import capture_plan
from proctor_app.services.settings import SPECS, get_settings
from proctor_app.services.uploads import RECORDER_SETTINGS, issue_upload_token, open_elsewhere
from proctor_app.state.auth import AuthState, requires


# The tab guard's name for this page (hex, from crypto.randomUUID).
PAGE_ID = re.compile(r"[0-9a-f]{32}")


class ExamRecordingState(AuthState):
    attempt_id: int = 0
    upload_token: str = ""
    streams: list[str] = []
    required: bool = False
    next_segment: dict[str, int] = {}
    next_snapshot_seq: int = 0
    # The recorder's settings start from the admin defaults (services/settings.py), their one home.
    chunk_interval_s: int = SPECS["chunk_interval_s"].default
    camera_bitrate_kbps: int = SPECS["camera_bitrate_kbps"].default
    screen_bitrate_kbps: int = SPECS["screen_bitrate_kbps"].default
    snapshot_interval_s: int = 0  # 0: no snapshots
    camera_resolution: str = SPECS["camera_resolution"].default
    screen_resolution: str = SPECS["screen_resolution"].default
    screen_frame_rate: int = SPECS["screen_frame_rate"].default
    clock_offset_ms: int = 0
    # "" while this page holds the exam; "open": another tab, window or device has it open;
    # "moved": the candidate moved the exam to another one.
    elsewhere: str = ""

    # As the recorder last reported it (it shows the indicator and upload progress itself).
    phase: str = ""
    recording: bool = False
    blocked: bool = False
    message: str = ""
    warning: str = ""
    flushed: bool = False

    @requires(CANDIDATE)
    def tab_event(self, event: dict):
        """From the tab guard: "claim" (this tab holds the lock; `take_over` when the candidate
        chose to move the exam here), "blocked" (another tab of this browser holds it), "lost"
        (another tab took it over)."""
        kind, page_id = event.get("event"), str(event.get("page_id", ""))
        if kind in ("blocked", "lost"):
            self.upload_token, self.elsewhere = "", "open" if kind == "blocked" else "moved"
        elif kind == "claim" and PAGE_ID.fullmatch(page_id):
            self._claim(page_id, event.get("take_over") is True)

    def _claim(self, page_id: str, take_over: bool) -> None:
        self.upload_token = ""
        try:
            with session_scope() as db:
                attempt = attempts.attempt_for_route(db, self.exam_id, self._user.id)
                if not take_over and open_elsewhere(db, attempt, page_id):
                    self.elsewhere = "open"  # on another device, or in a browser without Web Locks
                    return
                self.elsewhere = ""
                grant = issue_upload_token(db, attempt, page_id=page_id)
                if grant is None:
                    return
                exam = db.get(Exam, attempt.exam_id)
                settings = get_settings(db)
                self.required = capture_plan(db, exam).required
                self.clock_offset_ms = attempt.clock_offset_ms or 0
        except AttemptError:
            return
        self.attempt_id, self.upload_token, self.streams = grant.attempt_id, grant.token, grant.streams
        self.next_segment, self.next_snapshot_seq = grant.next_segment, grant.next_snapshot_seq
        self.snapshot_interval_s = grant.snapshot_interval_s
        for key in RECORDER_SETTINGS:
            setattr(self, key, settings[key])

    @requires(CANDIDATE)
    def on_status(self, status: dict):
        self.phase = str(status.get("state", ""))[:20]
        self.recording = status.get("recording") is True
        self.blocked = status.get("blocked") is True
        self.message = str(status.get("message", ""))[:500]
        self.warning = str(status.get("warning", ""))[:500]
        self.flushed = status.get("flushed") is True
