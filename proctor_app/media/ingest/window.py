"""The attempt's upload window: from its start until its end (or deadline) plus a grace for the
browser to flush what it queued."""

from datetime import datetime, timedelta

from sqlalchemy import Row

from proctor_app.media.ingest.errors import IngestError
from proctor_app.models import Attempt, AttemptStatus, RecordingStatus

# After the exam ends, the browser still has this long to flush what it queued.
FLUSH_GRACE = timedelta(minutes=15)
FINAL_RECORDING = {RecordingStatus.processing, RecordingStatus.completed, RecordingStatus.partial,
                    RecordingStatus.expired}


def upload_window_closes_at(attempt: Attempt) -> datetime | None:
    """Until when the attempt takes uploads: its end (or deadline) plus the flush grace."""
    end = attempt.ended_at or attempt.deadline_at
    return None if end is None else end + FLUSH_GRACE


def check_accepting(attempt: Attempt | Row, now: datetime, recording_status: str | None = None) -> None:
    """Refuses uploads to an attempt (an Attempt or a row with its columns) not taking them now."""
    if attempt.status == AttemptStatus.not_started or attempt.started_at is None:
        raise IngestError(409, "attempt_not_started", "The attempt has not started.")
    end = attempt.ended_at or attempt.deadline_at
    if end + FLUSH_GRACE < now:
        raise IngestError(409, "attempt_closed", "The attempt ended too long ago to take uploads.")
    if recording_status in FINAL_RECORDING:
        raise IngestError(409, "recording_finalized",
                          "The recording is already being processed; it takes no more chunks.")

