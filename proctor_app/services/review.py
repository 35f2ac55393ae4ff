"""What reviewers see of attempts: the filtered list, recording health, retention, the review, and
the signed links to the media (recording_link, snapshot_link).

Times on an attempt's timeline are seconds since the attempt started (the exam's clock), the
same base as Recording.gaps.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import PurePosixPath

from sqlalchemy import func
from sqlmodel import Session, exists, or_, select

from proctor_app.auth.sessions import CurrentUser
from proctor_app.models import (
    Attempt,
    AuditLog,
    Exam,
    Recording,
    RecordingStatus,
    ReviewStatus,
    ProctoringEvent,
    Snapshot,
    StreamKind,
    User,
    utcnow,
)
from proctor_app.media.playback.links import recording_link as recording_link
from proctor_app.media.storage.layout import HLS_MASTER
from proctor_app.media.playback.links import snapshot_link as snapshot_link
from proctor_app.media.storage import storage
from proctor_app.services.live import watchable_exam_ids
from proctor_app.services.organisations import sees_attempt, visible_to
from proctor_app.services.processing import finalize_pending, request_reprocess
from proctor_app.services.settings import get_setting

PAGE_SIZE = 20
MAX_NOTES = 5000
NO_RECORDING = "none"
# A missing stretch this short at the start or end of an exam is start-up time, not a gap.
EDGE_TOLERANCE_S = 2.0


class ReviewError(ValueError):
    """A review that cannot be saved; the message is shown to the reviewer."""


def format_time(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def iso_time(moment: datetime | None) -> str:
    """An instant for the browser to show in its own time zone (components/local_time.py)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else ""


def format_clock(seconds: float) -> str:
    whole = int(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def seconds_into(attempt: Attempt, moment: datetime | None) -> float | None:
    if moment is None or attempt.started_at is None:
        return None
    return (moment - attempt.started_at).total_seconds()


def reviewable_exam_ids(db: Session, user: CurrentUser) -> list[int] | None:
    """Exams whose attempts the user may review (None: all). The same as watching live: proctors
    their assigned exams, supervisors and admins every exam."""
    return watchable_exam_ids(db, user)


def reviewable_exams(db: Session, user: CurrentUser, exam_ids: list[int] | None) -> list[Exam]:
    """The exams of `exam_ids` (None: all) of the organisations the user sees, by title: the
    attempts list's exam filter. The hidden exams of API sessions are not offered (one per session)."""
    query = select(Exam).where(Exam.api_session.is_(False), visible_to(user, Exam.organisation_id)).order_by(Exam.title)
    if exam_ids is not None:
        query = query.where(Exam.id.in_(exam_ids))
    return list(db.exec(query))


def may_review(db: Session, user: CurrentUser, attempt: Attempt) -> bool:
    """Callers answer 404 first when `sees_attempt` is false: another organisation's attempt is not there."""
    exam_ids = reviewable_exam_ids(db, user)
    return sees_attempt(db, user, attempt) and (exam_ids is None or attempt.exam_id in exam_ids)


@dataclass(frozen=True)
class AttemptFilter:
    # The organisation and exams the reviewer may see at all (None: all); the others narrow within them.
    organisation_id: int | None = None
    allowed_exam_ids: tuple[int, ...] | None = None
    exam_id: int | None = None
    review_status: str = ""
    recording_status: str = ""  # a RecordingStatus, NO_RECORDING, or "" for any
    started_from: date | None = None
    started_to: date | None = None  # inclusive
    candidate: str = ""


@dataclass(frozen=True)
class AttemptListing:
    attempt: Attempt
    candidate: User
    exam: Exam
    recordings: list[Recording]


def list_attempts(db: Session, flt: AttemptFilter, page: int = 0,
                  page_size: int = PAGE_SIZE) -> tuple[list[AttemptListing], int]:
    """One page of attempts, newest start first, and the number of attempts matching in all."""
    conditions = []
    if flt.organisation_id is not None:
        conditions.append(Attempt.exam_id.in_(select(Exam.id).where(Exam.organisation_id == flt.organisation_id)))
    if flt.allowed_exam_ids is not None:
        conditions.append(Attempt.exam_id.in_(flt.allowed_exam_ids))
    if flt.exam_id is not None:
        conditions.append(Attempt.exam_id == flt.exam_id)
    if flt.review_status:
        conditions.append(Attempt.review_status == flt.review_status)
    if flt.recording_status == NO_RECORDING:
        conditions.append(~exists().where(Recording.attempt_id == Attempt.id))
    elif flt.recording_status:
        conditions.append(exists().where(Recording.attempt_id == Attempt.id,
                                         Recording.status == flt.recording_status))
    if flt.started_from:
        conditions.append(Attempt.started_at >= datetime.combine(flt.started_from, time.min, timezone.utc))
    if flt.started_to:
        conditions.append(Attempt.started_at < datetime.combine(flt.started_to + timedelta(days=1),
                                                                time.min, timezone.utc))
    if flt.candidate.strip():
        needle = flt.candidate.strip()
        conditions.append(or_(User.name.icontains(needle, autoescape=True),
                              User.email.icontains(needle, autoescape=True)))
    matching = select(Attempt.id).join(User, User.id == Attempt.candidate_id).where(*conditions)
    total = db.exec(select(func.count()).select_from(matching.subquery())).one()
    rows = db.exec(select(Attempt, User, Exam).join(User, User.id == Attempt.candidate_id)
                   .join(Exam, Exam.id == Attempt.exam_id).where(*conditions)
                   .order_by(Attempt.started_at.desc().nulls_last(), Attempt.id.desc())
                   .offset(page * page_size).limit(page_size)).all()
    recordings: dict[int, list[Recording]] = {}
    if rows:
        for rec in db.exec(select(Recording).where(Recording.attempt_id.in_([a.id for a, _, _ in rows]))
                           .order_by(Recording.stream)):
            recordings.setdefault(rec.attempt_id, []).append(rec)
    return [AttemptListing(a, u, e, recordings.get(a.id, [])) for a, u, e in rows], total


def recording_summary(rec: Recording) -> str:
    """One line on a recording's state, for badges and headings."""
    if rec.status == RecordingStatus.processing:
        return f"processing {rec.progress:.0%}"
    if rec.status == RecordingStatus.failed:
        return f"failed: {rec.failure_reason}" if rec.failure_reason else "failed"
    if rec.status == RecordingStatus.expired:
        return f"deleted {format_time(rec.expired_at)}"
    parts = [rec.status.replace("_", " ")]
    if rec.duration_s:
        parts.append(format_clock(rec.duration_s))
    parts.append(f"{rec.chunk_count} chunks")
    parts.append(f"{rec.gap_count} gaps")
    return ", ".join(parts)


@dataclass(frozen=True)
class Gap:
    start_s: float
    end_s: float
    cause: str


@dataclass(frozen=True)
class Health:
    exam_s: float
    coverage: float  # 0..1 of the exam's time that the recording covers (up to uploading_from_s)
    gaps: list[Gap]
    # While the attempt is in progress: where what has been uploaded ends (the live edge), when
    # time after it is still to come from the browser. Not a gap: the browser is still recording.
    uploading_from_s: float | None = None


def exam_window_s(attempt: Attempt, now: datetime | None = None) -> float | None:
    """How long the attempt has run (or ran): from start to end, or to now while in progress."""
    if attempt.started_at is None:
        return None
    end = attempt.ended_at or min(now or utcnow(), attempt.deadline_at or now or utcnow())
    return max(0.0, (end - attempt.started_at).total_seconds())


def recording_health(attempt: Attempt, rec: Recording, now: datetime | None = None) -> Health | None:
    """Coverage of the exam's time and the missing stretches with their causes.

    Besides the gaps processing found inside the recording, time before the recording started
    and after it stopped is missing too; overlaps are counted once. While the attempt is in
    progress, the time after the last upload is uploading (the browser holds it), not missing:
    coverage is then of the time up to that live edge.
    """
    exam_s = exam_window_s(attempt, now)
    if not exam_s:
        return None
    gaps = [Gap(float(g["start_s"]), float(g["end_s"]), str(g.get("cause", "")))
            for g in rec.gaps if g.get("end_s", 0) > g.get("start_s", 0)]
    rec_start, rec_end = seconds_into(attempt, rec.started_at), seconds_into(attempt, rec.ended_at)
    uploading_from = None
    if rec_start is None:
        gaps.append(Gap(0.0, exam_s, "no recording received"))
    else:
        if rec_start > EDGE_TOLERANCE_S:
            gaps.append(Gap(0.0, rec_start, "recording started late"))
        if rec_end is not None and exam_s - rec_end > EDGE_TOLERANCE_S:
            if attempt.ended_at is None:
                uploading_from = rec_end
            else:
                gaps.append(Gap(rec_end, exam_s, "recording stopped early"))
    covered_to = exam_s if uploading_from is None else uploading_from
    gaps.sort(key=lambda g: g.start_s)
    missing, counted_to = 0.0, 0.0
    for gap in gaps:
        start, end = max(gap.start_s, counted_to, 0.0), min(gap.end_s, covered_to)
        if end > start:
            missing += end - start
        counted_to = max(counted_to, end)
    coverage = max(0.0, 1 - missing / covered_to) if covered_to > 0 else 1.0
    return Health(exam_s, coverage, gaps, uploading_from)


def deletion_date(attempt: Attempt, retention_days: int) -> datetime | None:
    """When retention deletes this attempt's recordings: `retention_days` after the exam ended."""
    if attempt.legal_hold or attempt.ended_at is None:
        return None
    return attempt.ended_at + timedelta(days=retention_days)


def retention_notice(db: Session, attempt: Attempt, recordings: list[Recording]) -> str:
    days = get_setting(db, "retention_days")
    expired = [r for r in recordings if r.status == RecordingStatus.expired]
    if expired:
        first = min(expired, key=lambda r: r.expired_at or utcnow())
        why = first.expired_reason or f"The retention period of {days} days after the exam ended had passed."
        return f"This recording was deleted on {format_time(first.expired_at)}. {why} Events and the review are kept."
    if attempt.legal_hold:
        return "This recording is kept under legal hold: it will not be deleted while the hold lasts."
    when = deletion_date(attempt, days)
    if when is None:
        return f"This recording will be deleted after {days} days, counted from the end of the exam."
    return f"This recording will be deleted after {days} days, on {when:%Y-%m-%d}."


def can_reprocess(attempt: Attempt, recordings: list[Recording]) -> bool:
    """Whether processing the attempt again can work: it ended, its media and raw chunks are all
    still there, and nothing is being processed."""
    return (attempt.ended_at is not None and attempt.media_expired_at is None and bool(recordings)
            and all(r.raw_deleted_at is None and r.status not in (RecordingStatus.processing,
                                                                   RecordingStatus.expired)
                    for r in recordings))


def save_review(db: Session, attempt_id: int, status: str, notes: str, reviewer: CurrentUser) -> Attempt:
    if status not in {s.value for s in ReviewStatus}:
        raise ReviewError("Choose a review status.")
    if len(notes) > MAX_NOTES:
        raise ReviewError(f"Notes are limited to {MAX_NOTES} characters.")
    attempt = db.get(Attempt, attempt_id)
    if not sees_attempt(db, reviewer, attempt):
        raise ReviewError("No such attempt.")
    if not may_review(db, reviewer, attempt):
        raise ReviewError("You may not review attempts of this exam.")
    old = attempt.review_status
    attempt.review_status, attempt.review_notes = status, notes
    attempt.reviewed_by, attempt.reviewed_at = reviewer.id, utcnow()
    db.add(attempt)
    db.add(AuditLog(user_id=reviewer.id, action="review_saved", target=f"attempt:{attempt_id}",
                    data={"old_status": old, "new_status": status, "notes_chars": len(notes)}))
    return attempt


# A sprite is one thumbnail every N seconds of the video, each W pixels wide, tiled left to
# right in one image whose name ends in sprite_<N>s_<W>w.<ext>.
_SPRITE_NAME = re.compile(r"sprite_(\d+(?:\.\d+)?)s_(\d+)w\.[a-z]+$", re.ASCII)


@dataclass(frozen=True)
class AttemptMedia:
    """Everything the attempt video page shows of one attempt."""

    attempt: Attempt
    candidate: User
    exam: Exam
    recordings: list[Recording]  # the camera first: it leads the player, other streams follow
    events: list[ProctoringEvent]  # in server time order
    snapshots: list[Snapshot]  # those whose file is there; none once the media expired
    finalize_pending: bool  # processing is queued or running
    reviewer: User | None
    retention_notice: str


def attempt_media(db: Session, user: CurrentUser, attempt_id: int) -> AttemptMedia | None:
    """The attempt's media and record for a reviewer; None when there is no such attempt. Raises
    ReviewError when the user may not review it."""
    attempt = db.get(Attempt, attempt_id)
    if not sees_attempt(db, user, attempt):
        return None
    if not may_review(db, user, attempt):
        raise ReviewError("You may not review attempts of this exam.")
    recordings = sorted(db.exec(select(Recording).where(Recording.attempt_id == attempt.id)),
                        key=lambda r: (r.stream != StreamKind.camera, r.stream))
    expired = any(r.status == RecordingStatus.expired for r in recordings)
    snapshots = [] if expired else [
        snap for snap in db.exec(select(Snapshot).where(Snapshot.attempt_id == attempt.id)
                                 .order_by(Snapshot.seq)) if snapshot_on_disk(snap.path)]
    return AttemptMedia(
        attempt=attempt, candidate=db.get(User, attempt.candidate_id), exam=db.get(Exam, attempt.exam_id),
        recordings=recordings,
        events=list(db.exec(select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt.id)
                            .order_by(ProctoringEvent.server_time))),
        snapshots=snapshots, finalize_pending=finalize_pending(db, attempt.id),
        reviewer=db.get(User, attempt.reviewed_by) if attempt.reviewed_by else None,
        retention_notice=retention_notice(db, attempt, recordings))


def record_view(db: Session, user: CurrentUser, attempt_id: int) -> None:
    """The reviewer opened the attempt's page: audited."""
    db.add(AuditLog(user_id=user.id, action="attempt_viewed", target=f"attempt:{attempt_id}"))


def reprocess(db: Session, attempt_id: int, user: CurrentUser) -> bool:
    """Queue processing the attempt again (audited) when it can work; False when it cannot now."""
    attempt = db.get(Attempt, attempt_id)
    if attempt is None or not may_review(db, user, attempt):
        return False
    recordings = list(db.exec(select(Recording).where(Recording.attempt_id == attempt_id)))
    if finalize_pending(db, attempt_id) or not can_reprocess(attempt, recordings):
        return False
    request_reprocess(db, attempt_id, user.id)
    return True


def snapshot_on_disk(path: str) -> bool:
    """Whether a snapshot's file is there: one retention or a failed write left missing would
    only show as a broken image."""
    try:
        return storage.absolute(path).is_file()
    except ValueError:
        return False


def hls_link(user_id: int, attempt_id: int, stream: str) -> str:
    """A signed link for `user_id` to a recording's HLS master playlist (api/media.py signs the
    URIs in it for the same user)."""
    return recording_link(user_id, attempt_id, stream, f"hls/{HLS_MASTER}")


def sprite_layout(sprite_path: str) -> tuple[float, int] | None:
    """(seconds between thumbnails, thumbnail width) of a sprite, or None for an unknown name."""
    match = _SPRITE_NAME.search(PurePosixPath(sprite_path).name)
    if match is None or float(match.group(1)) <= 0:
        return None
    return float(match.group(1)), int(match.group(2))
