"""The life of an attempt: consent, start, answers, submit. The server's clock is the authority."""

from datetime import datetime, timedelta

from sqlmodel import Session, select

from proctor_app.models import (
    Answer,
    Attempt,
    AttemptStatus,
    Exam,
    ExamAssignment,
    ProctoringEvent,
    Question,
    QuestionKind,
    Severity,
    utcnow,
)

# An attempt still open this long after its deadline was abandoned: the server closes it.
ABANDON_GRACE = timedelta(seconds=30)


class AttemptError(Exception):
    """A request the attempt's state does not allow; the message is shown to the user."""


def record_event(db: Session, attempt_id: int, kind: str, severity: str = Severity.info,
                 data: dict | None = None, client_time: datetime | None = None) -> ProctoringEvent:
    event = ProctoringEvent(attempt_id=attempt_id, kind=kind, severity=severity,
                            data=data or {}, client_time=client_time)
    db.add(event)
    return event


def assigned_exam_ids(db: Session, user_id: int) -> list[int]:
    return list(db.exec(select(ExamAssignment.exam_id).where(ExamAssignment.user_id == user_id)))


def attempt_for(db: Session, exam_id: int, candidate_id: int) -> Attempt:
    """The candidate's attempt at an exam, created on first access; only for assigned candidates."""
    if exam_id not in assigned_exam_ids(db, candidate_id):
        raise AttemptError("This exam is not assigned to you.")
    attempt = db.exec(select(Attempt).where(Attempt.exam_id == exam_id,
                                            Attempt.candidate_id == candidate_id)).first()
    if attempt is None:
        attempt = Attempt(exam_id=exam_id, candidate_id=candidate_id)
        db.add(attempt)
        db.flush()
    return close_if_overdue(db, attempt)


def accept_consent(db: Session, attempt: Attempt, consent_text: str) -> None:
    if attempt.status != AttemptStatus.not_started:
        raise AttemptError("This attempt has already started.")
    if attempt.consent_at is None:
        attempt.consent_at = utcnow()
        db.add(attempt)
        record_event(db, attempt.id, "consent_accepted", data={"text": consent_text})


def start(db: Session, attempt: Attempt, clock_offset_ms: int | None) -> Attempt:
    """Start the timer. Starting again (a reload) keeps the original deadline."""
    if attempt.status == AttemptStatus.in_progress:
        return attempt
    if attempt.status != AttemptStatus.not_started:
        raise AttemptError("This attempt is already finished.")
    if attempt.consent_at is None:
        raise AttemptError("Accept the recording consent first.")
    exam = db.get(Exam, attempt.exam_id)
    now = utcnow()
    attempt.status = AttemptStatus.in_progress
    attempt.started_at = now
    attempt.deadline_at = now + timedelta(minutes=exam.duration_minutes)
    attempt.clock_offset_ms = clock_offset_ms
    db.add(attempt)
    record_event(db, attempt.id, "exam_started", data={"clock_offset_ms": clock_offset_ms})
    return attempt


def close_if_overdue(db: Session, attempt: Attempt, now: datetime | None = None) -> Attempt:
    now = now or utcnow()
    if attempt.status == AttemptStatus.in_progress and attempt.deadline_at <= now:
        _end(db, attempt, auto=True, now=now)
    return attempt


def save_answer(db: Session, attempt: Attempt, question_id: int, value: str) -> Answer:
    close_if_overdue(db, attempt)
    if attempt.status != AttemptStatus.in_progress:
        raise AttemptError("The attempt is closed; answers can no longer change.")
    question = db.get(Question, question_id)
    if question is None or question.exam_id != attempt.exam_id:
        raise AttemptError("No such question in this exam.")
    if question.kind == QuestionKind.single_choice and value not in question.options:
        raise AttemptError("Pick one of the offered options.")
    answer = db.exec(select(Answer).where(Answer.attempt_id == attempt.id,
                                          Answer.question_id == question_id)).first()
    answer = answer or Answer(attempt_id=attempt.id, question_id=question_id)
    answer.value = value
    answer.saved_at = utcnow()
    db.add(answer)
    record_event(db, attempt.id, "answer_saved", data={"question_id": question_id})
    return answer


def submit(db: Session, attempt: Attempt, auto: bool = False) -> Attempt:
    close_if_overdue(db, attempt)
    if attempt.status != AttemptStatus.in_progress:
        raise AttemptError("This attempt is already finished.")
    return _end(db, attempt, auto=auto, now=utcnow())


def _end(db: Session, attempt: Attempt, auto: bool, now: datetime) -> Attempt:
    # A late auto-submit still ends at the deadline: the exam's time is what counts.
    attempt.ended_at = min(now, attempt.deadline_at) if auto else now
    attempt.status = AttemptStatus.submitted
    if auto and now > attempt.deadline_at + ABANDON_GRACE:
        attempt.status = AttemptStatus.expired
    db.add(attempt)
    record_event(db, attempt.id, "auto_submitted" if auto else "submitted",
                 data={"status": attempt.status})
    return attempt


def close_overdue_attempts(db: Session, now: datetime | None = None) -> int:
    """Server-side time-out for attempts whose browser is gone; run periodically."""
    now = now or utcnow()
    overdue = db.exec(select(Attempt).where(Attempt.status == AttemptStatus.in_progress,
                                            Attempt.deadline_at <= now)).all()
    for attempt in overdue:
        _end(db, attempt, auto=True, now=now)
    return len(overdue)
