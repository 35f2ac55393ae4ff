"""The database schema. Every table is defined here; Alembic migrations create them."""

from proctor_app.models.accounts import LoginSession, Role, User
from proctor_app.models.alerts import AlertReason, ProctorAlert
from proctor_app.models.audit import AuditLog, Setting
from proctor_app.models.exams import (
    Answer,
    Attempt,
    AttemptStatus,
    Exam,
    ExamAssignment,
    ProctoringEvent,
    Question,
    QuestionKind,
    ReviewStatus,
    Severity,
)
from proctor_app.models.health import HealthSample
from proctor_app.models.jobs import Job, JobStatus
from proctor_app.models.recording import (
    Chunk,
    Recording,
    RecordingStatus,
    Segment,
    Snapshot,
    StreamKind,
    UploadToken,
)
from proctor_app.models.organisations import DEFAULT_ORGANISATION_ID, ApiKey, ApiSession, Organisation
from proctor_app.models.base import utcnow
from proctor_app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = [
    "AlertReason", "ApiKey", "ApiSession", "DEFAULT_ORGANISATION_ID", "Organisation", "Answer", "Attempt", "AttemptStatus",
    "AuditLog", "Chunk", "Exam", "ExamAssignment", "HealthSample", "Job",
    "JobStatus", "LoginSession", "ProctorAlert", "ProctoringEvent", "Question", "QuestionKind", "Recording",
    "RecordingStatus", "ReviewStatus", "Role", "Segment", "Setting", "Severity", "Snapshot",
    "StreamKind", "UploadToken", "User", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint",
    "WebhookEvent", "utcnow",
]
