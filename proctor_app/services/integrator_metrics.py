"""An organisation's figures for GET /api/v1/metrics: its sessions that ended in a window, their
recordings by status, processing times, failures by reason, storage, and webhook deliveries."""

from collections import Counter
from datetime import datetime

from sqlmodel import Session, func, select

from proctor_app.models import (
    Attempt,
    Exam,
    Job,
    JobStatus,
    Recording,
    RecordingStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from proctor_app.services.health import _percentile
from proctor_app.services.processing import FINALIZE


def _rate(good: int, total: int) -> float | None:
    return round(good / total, 4) if total else None


def organisation_metrics(db: Session, organisation_id: int, start: datetime, end: datetime) -> dict:
    attempts = (select(Attempt.id).join(Exam, Exam.id == Attempt.exam_id)
                .where(Exam.organisation_id == organisation_id, Attempt.ended_at >= start, Attempt.ended_at < end))
    recordings = list(db.exec(select(Recording.status, Recording.failure_reason)
                              .where(Recording.attempt_id.in_(attempts))))
    by_status = Counter(status for status, _ in recordings)
    finished = sum(by_status[s] for s in (RecordingStatus.completed, RecordingStatus.partial,
                                          RecordingStatus.failed))
    durations = [(done - began).total_seconds() for began, done in db.exec(
        select(Job.started_at, Job.finished_at).where(Job.kind == FINALIZE, Job.status == JobStatus.done,
                                                      Job.attempt_id.in_(attempts)))
                 if began and done]
    stored = db.exec(select(func.coalesce(func.sum(Recording.size_bytes), 0))
                     .join(Attempt, Attempt.id == Recording.attempt_id).join(Exam, Exam.id == Attempt.exam_id)
                     .where(Exam.organisation_id == organisation_id, Recording.status != RecordingStatus.expired)).one()
    tries = list(db.exec(select(WebhookAttempt.ok)
                         .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                         .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                         .where(WebhookEndpoint.organisation_id == organisation_id,
                                WebhookAttempt.at >= start, WebhookAttempt.at < end)))
    p50, p95 = _percentile(durations, 0.5), _percentile(durations, 0.95)
    return {
        "from": start, "to": end,
        "recordings": dict(sorted(by_status.items())),
        "success_rate": _rate(by_status[RecordingStatus.completed] + by_status[RecordingStatus.partial], finished),
        "processing_s": {"p50": p50 and round(p50, 1), "p95": p95 and round(p95, 1)},
        "failures": dict(Counter(reason or "unknown" for status, reason in recordings
                                 if status == RecordingStatus.failed).most_common()),
        "storage_bytes": int(stored),
        "webhooks": {"tries": len(tries), "success_rate": _rate(sum(1 for ok in tries if ok), len(tries))},
    }
