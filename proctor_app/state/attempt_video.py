"""The attempt video page: recordings in sync, events on a timeline, snapshots, health, review."""

from dataclasses import dataclass
from typing import Any

import reflex as rx

from proctor_app.auth.roles import ADMIN, LEGAL_HOLD, STAFF_REVIEW
from proctor_app.db import session_scope
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    ProctoringEvent,
    Recording,
    RecordingStatus,
    ReviewStatus,
    Snapshot,
)
from proctor_app.services import evidence, legal_holds, live_views, organisations, proctoring_texts, review
from proctor_app.services.live_views import ViewRow
from proctor_app.state.auth import AuthState, requires

PLAYABLE = (RecordingStatus.completed, RecordingStatus.partial)
STATUS_COLORS = {
    RecordingStatus.completed: "green", RecordingStatus.partial: "amber",
    RecordingStatus.in_progress: "blue", RecordingStatus.processing: "violet",
    RecordingStatus.failed: "red", RecordingStatus.expired: "gray", RecordingStatus.not_started: "gray",
}


@dataclass
class GapRow:
    span: str
    duration: str
    cause: str


@dataclass
class StreamPanel:
    stream: str
    status: str
    summary: str
    color: str
    progress: int
    coverage: str
    gaps: list[GapRow]
    # While in progress: the stretch after the last upload, which the browser still holds.
    uploading: str
    download_url: str


@dataclass
class EventRow:
    id: int
    clock: str
    at: str
    seek_s: str  # "" when the event lies outside the recorded timeline
    text: str
    severity: str
    details: list[str]


@dataclass
class SnapshotRow:
    seq: int
    src: str
    clock: str
    seek_s: str


class AttemptVideoState(AuthState):
    found: bool = False
    missing: bool = False
    candidate: str = ""
    exam_title: str = ""
    # The organisation, and the caller's external id for an API session.
    origin: str = ""
    attempt_status: str = ""
    started: str = ""
    ended: str = ""
    # Processing queued or running (a job), and a recording being converted now.
    job_active: bool = False
    converting: bool = False
    can_reprocess: bool = False
    reprocess_notice: str = ""
    streams: list[StreamPanel] = []
    # Handed to the player component as they are.
    player_videos: list[dict[str, Any]] = []
    # What the player area plays: the final recording, or what was uploaded so far.
    player_caption: str = ""
    # What has been uploaded so far of recordings not processed yet: [{"stream", "src"}].
    previews: list[dict[str, str]] = []
    # Bumped by "Load the latest": the preview players fetch the preview again.
    preview_round: int = 0
    markers: list[dict[str, Any]] = []
    timeline_gaps: list[dict[str, float]] = []
    timeline_s: float = 0.0
    sprite: dict[str, Any] = {}
    events: list[EventRow] = []
    snapshots: list[SnapshotRow] = []
    # Who watched the attempt live (from, to) and who opened its recordings, from the audit log.
    views: list[ViewRow] = []
    # The signed link of the evidence bundle (supervisors and admins, once there is an MP4).
    evidence_url: str = ""
    retention_notice: str = ""
    legal_hold: bool = False
    media_deleted: bool = False
    may_hold: bool = False  # a supervisor or admin
    hold_error: str = ""
    review_status: str = ReviewStatus.not_reviewed
    review_notes: str = ""
    reviewed_label: str = ""
    review_error: str = ""
    review_saved: str = ""
    # Bumped whenever the saved review is loaded, so the form shows it afresh.
    review_form_key: int = 0
    _attempt_id: int = 0

    @rx.var
    def in_progress(self) -> bool:
        return self.attempt_status == AttemptStatus.in_progress.replace("_", " ")

    @rx.var
    def processing(self) -> bool:
        return self.job_active or self.converting

    @rx.var
    def processing_queued(self) -> bool:
        return self.job_active and not self.converting

    @rx.var
    def can_change_hold(self) -> bool:
        """Supervisors and admins, while there is media to hold (or a hold to release)."""
        return self.may_hold and (self.legal_hold or not self.media_deleted)

    def _load(self) -> str:
        """Read the attempt into the page: "found", "missing", or "forbidden" for this reviewer."""
        try:
            attempt_id = int(self.attempt_id)
        except ValueError:
            attempt_id = 0
        user_id = self._user.id
        with session_scope() as db:
            try:
                media = review.attempt_media(db, self._user, attempt_id)
            except review.ReviewError:
                self.found, self.missing = False, False
                return "forbidden"
            self.found, self.missing = media is not None, media is None
            if media is None:
                return "missing"
            attempt, recordings = media.attempt, media.recordings
            self._attempt_id = attempt.id
            self.candidate = f"{media.candidate.name} <{media.candidate.email}>"
            self.exam_title = media.exam.title
            self.origin = organisations.origin_marks(db, [attempt.id]).get(attempt.id, "")
            self.attempt_status = attempt.status.replace("_", " ")
            self.started, self.ended = review.iso_time(attempt.started_at), review.iso_time(attempt.ended_at)
            self.job_active = media.finalize_pending
            self.converting = any(r.status == RecordingStatus.processing for r in recordings)
            self.can_reprocess = not media.finalize_pending and review.can_reprocess(attempt, recordings)
            self._load_recordings(attempt, recordings, user_id)
            self._load_events(attempt, media.events)
            self._load_snapshots(attempt, media.snapshots, user_id)
            self.views = live_views.attempt_views(db, attempt.id)
            self.evidence_url = evidence.bundle_link(
                self._user, attempt.id, attempt.media_expired_at is None and any(r.mp4_path for r in recordings))
            self.retention_notice = media.retention_notice
            self.legal_hold, self.media_deleted = attempt.legal_hold, attempt.media_expired_at is not None
            self.may_hold = self._user.role in LEGAL_HOLD
            self._show_review(attempt, media.reviewer.name if media.reviewer else None)
        return "found"

    def _load_recordings(self, attempt: Attempt, recordings: list[Recording], user_id: int) -> None:
        panels, videos, gaps = [], [], []
        self.sprite = {}
        uploaded = [rec for rec in recordings if rec.status == RecordingStatus.in_progress and rec.chunk_count]
        self.previews = [{"stream": rec.stream, "src": review.recording_link(user_id, attempt.id, rec.stream, "preview")}
                         for rec in uploaded]
        timeline_s = review.exam_window_s(attempt) or 0.0
        for rec in recordings:
            health = review.recording_health(attempt, rec)
            playable = rec.status in PLAYABLE and bool(rec.mp4_path)
            panels.append(StreamPanel(
                stream=rec.stream, status=rec.status, summary=review.recording_summary(rec),
                color=STATUS_COLORS.get(rec.status, "gray"), progress=round(rec.progress * 100),
                coverage=f"{health.coverage:.1%}" if health else "",
                gaps=[GapRow(span=f"{review.format_clock(g.start_s)}-{review.format_clock(g.end_s)}",
                             duration=f"{g.end_s - g.start_s:.0f} s", cause=g.cause)
                      for g in (health.gaps if health else [])],
                uploading=proctoring_texts.uploading_from(health.uploading_from_s, health.exam_s)
                if health and health.uploading_from_s is not None else "",
                download_url=review.recording_link(user_id, attempt.id, rec.stream, "video", download=True)
                if playable else ""))
            if not playable:
                continue
            offset = max(0.0, review.seconds_into(attempt, rec.started_at) or 0.0)
            videos.append({
                "stream": rec.stream, "offset": offset,
                "src": review.recording_link(user_id, attempt.id, rec.stream, "video"),
                # The HLS ladder once made (an hls job after the MP4); the player falls back to src.
                "hls": review.hls_link(user_id, attempt.id, rec.stream) if rec.hls_path else "",
                "poster": review.recording_link(user_id, attempt.id, rec.stream, "poster") if rec.poster_path else "",
            })
            timeline_s = max(timeline_s, offset + (rec.duration_s or 0.0))
            layout = review.sprite_layout(rec.sprite_path) if rec.sprite_path else None
            if layout and not self.sprite:
                self.sprite = {"url": review.recording_link(user_id, attempt.id, rec.stream, "sprite"),
                               "interval": layout[0], "width": layout[1], "offset": offset}
            if health and len(videos) == 1:
                gaps = [{"start": g.start_s, "end": g.end_s} for g in health.gaps]
        self.streams, self.player_videos, self.timeline_gaps = panels, videos, gaps
        self.timeline_s = timeline_s
        self.player_caption = proctoring_texts.player_caption(
            final=bool(videos), uploaded_to_s=[review.seconds_into(attempt, rec.ended_at) or 0.0 for rec in uploaded],
            in_progress=attempt.ended_at is None)

    def _load_events(self, attempt: Attempt, events: list[ProctoringEvent]) -> None:
        rows, markers = [], []
        for event in events:
            t = review.seconds_into(attempt, event.server_time)
            on_timeline = bool(self.player_videos) and t is not None and 0 <= t <= self.timeline_s
            clock = review.format_clock(t) if t is not None and t >= 0 else "before start"
            text = proctoring_texts.describe_event(event.kind, event.data)
            rows.append(EventRow(id=event.id, clock=clock, at=review.format_time(event.server_time),
                                 seek_s=f"{t:.3f}" if on_timeline else "", text=text.sentence,
                                 severity=event.severity, details=text.details))
            if on_timeline:
                markers.append({"id": event.id, "t": t, "severity": event.severity,
                                "label": f"{clock} {text.sentence} ({event.severity})"})
        self.events, self.markers = rows, markers

    def _load_snapshots(self, attempt: Attempt, snapshots: list[Snapshot], user_id: int) -> None:
        rows = []
        for snap in snapshots:
            t = review.seconds_into(attempt, snap.taken_at or snap.received_at)
            on_timeline = bool(self.player_videos) and t is not None and 0 <= t <= self.timeline_s
            rows.append(SnapshotRow(seq=snap.seq, src=review.snapshot_link(user_id, attempt.id, snap.seq),
                                    clock=review.format_clock(t) if t is not None and t >= 0 else "before start",
                                    seek_s=f"{t:.3f}" if on_timeline else ""))
        self.snapshots = rows

    def _show_review(self, attempt: Attempt, reviewer_name: str | None) -> None:
        self.review_status, self.review_notes = attempt.review_status, attempt.review_notes
        self.reviewed_label = (f"Last saved by {reviewer_name} at {review.format_time(attempt.reviewed_at)}"
                               if reviewer_name else "Not reviewed yet")
        self.review_form_key += 1

    @requires(STAFF_REVIEW)
    def on_load(self):
        self.review_error = self.review_saved = self.reprocess_notice = self.hold_error = ""
        outcome = self._load()
        if outcome == "forbidden":
            return rx.redirect("/forbidden")
        if outcome == "found":
            with session_scope() as db:
                review.record_view(db, self._user, self._attempt_id)

    @requires(STAFF_REVIEW)
    def refresh(self):
        """Polled while a recording is processing, to move the progress bar and show the result."""
        if self._load() == "forbidden":
            return rx.redirect("/forbidden")

    @requires(STAFF_REVIEW)
    def reload_previews(self):
        if self._load() == "forbidden":
            return rx.redirect("/forbidden")
        self.preview_round += 1

    @requires(ADMIN)
    def reprocess(self):
        with session_scope() as db:
            queued = review.reprocess(db, self._attempt_id, self._user)
        if not queued:
            self.reprocess_notice = "This attempt cannot be processed again now."
            return
        self.reprocess_notice = "Processing again: queued."
        self._load()

    @requires(LEGAL_HOLD)
    def toggle_legal_hold(self, form: dict):
        """Flips the hold the reviewer saw: placed if it was off, released if it was on."""
        try:
            with session_scope() as db:
                legal_holds.change_legal_hold(db, self._attempt_id, not self.legal_hold,
                                              str(form.get("reason", "")), self._user)
        except legal_holds.LegalHoldError as exc:
            self.hold_error = str(exc)
            return
        self.hold_error = ""
        self._load()

    @requires(STAFF_REVIEW)
    def save_review(self, form: dict):
        try:
            with session_scope() as db:
                attempt = review.save_review(db, self._attempt_id, form.get("status", ""),
                                             form.get("notes", ""), self._user)
                self._show_review(attempt, self._user.name)
        except review.ReviewError as exc:
            self.review_error, self.review_saved = str(exc), ""
            return
        self.review_error, self.review_saved = "", "Review saved."
