"""What an exam captures from the candidate, and the consent text that says so.

The consent text is generated from the same plan the capture code follows, so what the candidate
accepts is what happens. The accepted text is stored with the `consent_accepted` event.
"""

from dataclasses import dataclass

from sqlmodel import Session

from proctor_app.i18n import DEFAULT_LANGUAGE, format_number, gettext
from proctor_app.models import Exam
from proctor_app.services.settings import get_settings


@dataclass(frozen=True)
class CapturePlan:
    """The exam's capture flags, each also switched on in the admin settings."""

    camera_recording: bool  # camera video and microphone audio, stored
    screen_recording: bool
    live_video: bool  # proctors watch the camera live
    required: bool  # the exam cannot start without the recording working
    snapshots: bool  # camera stills, whatever the video flags
    snapshot_interval_s: int

    @property
    def uses_camera(self) -> bool:
        return self.camera_recording or self.live_video or self.snapshots

    @property
    def proctored(self) -> bool:
        """Whether the browser captures anything: then it also reports tab, focus, fullscreen and
        network events, whatever the video flags."""
        return self.uses_camera or self.screen_recording

    @property
    def stores_media(self) -> bool:
        return self.camera_recording or self.screen_recording or self.snapshots


def capture_plan(db: Session, exam: Exam) -> CapturePlan:
    settings = get_settings(db)
    camera = exam.recording and settings["recording_enabled"]
    screen = exam.screen_recording and settings["screen_recording_enabled"]
    return CapturePlan(
        camera_recording=camera,
        screen_recording=screen,
        live_video=exam.live_video and settings["live_video_enabled"],
        required=exam.recording_required and (camera or screen),
        snapshots=exam.snapshots,
        snapshot_interval_s=exam.snapshot_interval_s,
    )


def consent_lines(plan: CapturePlan, retention_days: int, lang: str = DEFAULT_LANGUAGE) -> list[str]:
    """The consent text, one statement per line: what is captured, who sees it, when it is deleted.
    In the candidate's language: the text stored as accepted is the one they read."""
    lines = []
    if plan.camera_recording:
        lines.append(gettext(lang, "Your camera (video) and microphone (audio) are recorded for the "
                                   "whole exam."))
    if plan.screen_recording:
        lines.append(gettext(lang, "Your screen is recorded for the whole exam, with the sound it plays "
                                   "if you share it: your browser's sharing dialog asks (Chrome and Edge "
                                   "only), and the recording indicator shows whether the sound is shared."))
    if plan.live_video:
        lines.append(gettext(lang, "Proctors can watch your camera live while you take the exam."))
    if plan.snapshots:
        lines.append(gettext(lang, "A still picture (snapshot) is taken from your camera every {seconds} "
                                   "seconds.", seconds=format_number(lang, plan.snapshot_interval_s)))
    if plan.proctored:
        lines.append(gettext(lang, "Your browser reports when you switch to another tab or window, leave "
                                   "full screen, or go offline, and these events are stored with the exam "
                                   "time."))
    else:
        lines.append(gettext(lang, "Nothing is recorded from your camera, microphone or screen in this exam."))
    lines.append(gettext(lang, "Your answers and exam events (start, questions viewed, answers saved, "
                               "submission, device checks) are stored with the exam time."))
    lines.append(gettext(lang, "What is recorded, your answers and the events can be seen by proctors, "
                               "supervisors and administrators of this platform."))
    if plan.stores_media:
        lines.append(gettext(lang, "Recordings and snapshots are deleted automatically {days} days after "
                                   "the exam, unless an administrator places the attempt on legal hold.",
                             days=format_number(lang, retention_days)))
    return lines
