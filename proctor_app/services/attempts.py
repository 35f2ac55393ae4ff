"""The life of an attempt: consent, start, answers, submit. The server's clock is the authority.

Every function takes the candidate's attempt from `attempt_for`, which checks the assignment and
locks the attempt's row (PostgreSQL), so two tabs or the overdue sweeper cannot end it twice.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from proctor_app.i18n import N_
from proctor_app.models import (
    Answer,
    Attempt,
    AttemptStatus,
    Exam,
    ExamAssignment,
    ProctoringEvent,
    Question,
    QuestionKind,
    Role,
    Severity,
    User,
    utcnow,
)
from proctor_app.services.processing import enqueue_finalize, enqueue_grow

# An attempt still open this long after its deadline was abandoned: the server closes it.
ABANDON_GRACE = timedelta(seconds=30)
MAX_ANSWER_CHARS = 20_000
# A client clock further off than this is not a clock: the measurement is discarded.
MAX_CLOCK_OFFSET_MS = 10 * 365 * 24 * 3600 * 1000

CLOSED_MESSAGE = N_("The attempt is closed; answers can no longer change.")


class AttemptError(Exception):
    """A request the attempt's state does not allow; the message is shown to the user.

    `msgid` is the message in the catalogue (proctor_app/i18n.py) and `params` fill its
    placeholders, so a page shows it in the user's language; str() is the English text."""

    def __init__(self, msgid: str, **params):
        super().__init__(msgid.format(**params))
        self.msgid, self.params = msgid, params


def record_event(db: Session, attempt_id: int, kind: str, severity: str = Severity.info,
                 data: dict | None = None, client_time: datetime | None = None) -> ProctoringEvent:
    event = ProctoringEvent(attempt_id=attempt_id, kind=kind, severity=severity,
                            data=data or {}, client_time=client_time)
    db.add(event)
    return event


def _own_organisation_assignments(user_id: int):
    """Assignments of the user to exams of their own organisation: one left over from another
    organisation (a moved user) gives nothing."""
    return (select(ExamAssignment.exam_id).join(Exam, Exam.id == ExamAssignment.exam_id)
            .join(User, User.id == ExamAssignment.user_id)
            .where(ExamAssignment.user_id == user_id, Exam.organisation_id == User.organisation_id))


def assigned_exam_ids(db: Session, user_id: int) -> list[int]:
    return list(db.exec(_own_organisation_assignments(user_id)))


def _find_attempt(db: Session, exam_id: int, candidate_id: int) -> Attempt | None:
    return db.exec(select(Attempt).where(Attempt.exam_id == exam_id,
                                         Attempt.candidate_id == candidate_id)
                   .with_for_update()).first()


def attempt_for(db: Session, exam_id: int, candidate_id: int) -> Attempt:
    """The candidate's attempt at an exam, created on first access; only for assigned candidates."""
    user = db.get(User, candidate_id)
    if user is None or user.role != Role.candidate or not user.active:
        raise AttemptError("Only candidates take exams.")
    if exam_id not in assigned_exam_ids(db, candidate_id):
        raise AttemptError("This exam is not assigned to you.")
    attempt = _find_attempt(db, exam_id, candidate_id)
    if attempt is None:
        try:
            # A savepoint: when another tab created it first, only this insert is undone.
            with db.begin_nested():
                attempt = Attempt(exam_id=exam_id, candidate_id=candidate_id)
                db.add(attempt)
        except IntegrityError:
            attempt = _find_attempt(db, exam_id, candidate_id)
    return close_if_overdue(db, attempt)


def attempt_for_route(db: Session, exam_id_arg: str, candidate_id: int) -> Attempt:
    """attempt_for, given the exam page's [exam_id] route argument, which may be anything."""
    if not exam_id_arg.isdigit():
        raise AttemptError("There is no such exam.")
    return attempt_for(db, int(exam_id_arg), candidate_id)


def accept_consent(db: Session, attempt: Attempt, consent_text: str) -> None:
    if attempt.status != AttemptStatus.not_started:
        raise AttemptError("This attempt has already started.")
    if attempt.consent_at is None:
        attempt.consent_at = utcnow()
        db.add(attempt)
        record_event(db, attempt.id, "consent_accepted", data={"text": consent_text})


def clock_offset(value) -> int | None:
    """A measured offset as whole ms, or None when it is missing or not believable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    offset = round(value)
    return offset if abs(offset) <= MAX_CLOCK_OFFSET_MS else None


def start(db: Session, attempt: Attempt, clock_offset_ms: float | None) -> Attempt:
    """Start the timer. Starting again (a reload) keeps the original deadline."""
    close_if_overdue(db, attempt)
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
    attempt.clock_offset_ms = clock_offset(clock_offset_ms)
    db.add(attempt)
    record_event(db, attempt.id, "exam_started", data={"clock_offset_ms": attempt.clock_offset_ms})
    if exam.recording:
        enqueue_grow(db, attempt.id)  # same transaction: the MP4s grow while the exam goes on
    return attempt


def record_clock_sync(db: Session, attempt: Attempt, offset_ms: float, rtt_ms: float) -> None:
    """A clock measured again after the start (a reload): later client times are read with it."""
    if attempt.status == AttemptStatus.in_progress:
        record_event(db, attempt.id, "clock_synced",
                     data={"clock_offset_ms": clock_offset(offset_ms), "rtt_ms": clock_offset(rtt_ms)})


def record_device_check(db: Session, attempt: Attempt, ok: bool, details: dict) -> None:
    """The pre-exam camera and microphone check's outcome, as the browser reported it."""
    if attempt.status != AttemptStatus.not_started:
        return
    data = {key: str(details.get(key, ""))[:200]
            for key in ("error_name", "camera", "microphone") if details.get(key)}
    for key in ("width", "height"):
        if isinstance(details.get(key), int) and not isinstance(details.get(key), bool):
            data[key] = details[key]
    record_event(db, attempt.id, "device_check_passed" if ok else "device_check_failed",
                 severity=Severity.info if ok else Severity.warning, data=data)


def close_if_overdue(db: Session, attempt: Attempt, now: datetime | None = None) -> Attempt:
    now = now or utcnow()
    if attempt.status == AttemptStatus.in_progress and attempt.deadline_at <= now:
        _end(db, attempt, auto=True, now=now)
    return attempt


def _open_question(db: Session, attempt: Attempt, question_id: int) -> Question:
    """The question, when the attempt is still open and the question is part of its exam."""
    close_if_overdue(db, attempt)
    if attempt.status != AttemptStatus.in_progress:
        raise AttemptError(CLOSED_MESSAGE)
    question = db.get(Question, question_id)
    if question is None or question.exam_id != attempt.exam_id:
        raise AttemptError("No such question in this exam.")
    return question


def view_question(db: Session, attempt: Attempt, question_id: int) -> None:
    _open_question(db, attempt, question_id)
    record_event(db, attempt.id, "question_viewed", data={"question_id": question_id})


def save_answer(db: Session, attempt: Attempt, question_id: int, value: str) -> Answer:
    """Save one answer; saving the value already stored changes nothing and records nothing."""
    question = _open_question(db, attempt, question_id)
    if not isinstance(value, str):
        raise AttemptError("An answer is text.")
    if question.kind == QuestionKind.single_choice and value not in question.options:
        raise AttemptError("Pick one of the offered options.")
    if len(value) > MAX_ANSWER_CHARS:
        raise AttemptError("Answers can have at most {count} characters.", count=MAX_ANSWER_CHARS)
    answer = db.exec(select(Answer).where(Answer.attempt_id == attempt.id,
                                          Answer.question_id == question_id)).first()
    if answer is not None and answer.value == value:
        return answer
    answer = answer or Answer(attempt_id=attempt.id, question_id=question_id)
    answer.value = value
    answer.saved_at = utcnow()
    db.add(answer)
    record_event(db, attempt.id, "answer_saved", data={"question_id": question_id})
    return answer


def submit(db: Session, attempt: Attempt, now: datetime | None = None) -> Attempt:
    now = now or utcnow()
    close_if_overdue(db, attempt, now)
    if attempt.status != AttemptStatus.in_progress:
        raise AttemptError("This attempt is already finished.")
    return _end(db, attempt, auto=False, now=now)


def _end(db: Session, attempt: Attempt, auto: bool, now: datetime) -> Attempt:
    # A late auto-submit still ends at the deadline: the exam's time is what counts.
    attempt.ended_at = min(now, attempt.deadline_at) if auto else now
    attempt.status = AttemptStatus.submitted
    if auto and now > attempt.deadline_at + ABANDON_GRACE:
        attempt.status = AttemptStatus.expired
    db.add(attempt)
    record_event(db, attempt.id, "auto_submitted" if auto else "submitted",
                 data={"status": attempt.status})
    enqueue_finalize(db, attempt.id)  # same transaction: the recordings are processed once it ends
    return attempt


def ended_automatically(db: Session, attempt: Attempt) -> bool:
    return db.exec(select(ProctoringEvent.id).where(ProctoringEvent.attempt_id == attempt.id,
                                                    ProctoringEvent.kind == "auto_submitted")
                   ).first() is not None


def close_overdue_attempts(db: Session, now: datetime | None = None) -> int:
    """Server-side time-out for attempts whose browser is gone; run periodically."""
    now = now or utcnow()
    # Rows a candidate's request holds are skipped: that request closes them itself.
    overdue = db.exec(select(Attempt).where(Attempt.status == AttemptStatus.in_progress,
                                            Attempt.deadline_at <= now)
                      .with_for_update(skip_locked=True)).all()
    for attempt in overdue:
        _end(db, attempt, auto=True, now=now)
    return len(overdue)


def questions_of(db: Session, exam_id: int) -> list[Question]:
    return list(db.exec(select(Question).where(Question.exam_id == exam_id)
                        .order_by(Question.position, Question.id)))


def answers_of(db: Session, attempt: Attempt) -> dict[int, str]:
    return {a.question_id: a.value
            for a in db.exec(select(Answer).where(Answer.attempt_id == attempt.id))}


@dataclass(frozen=True)
class AssignedExam:
    exam_id: int
    title: str
    duration_minutes: int
    status: str
    seconds_left: int | None  # only while in progress
    started_at: datetime | None
    ended_at: datetime | None


def assigned_exams(db: Session, candidate_id: int, now: datetime | None = None) -> list[AssignedExam]:
    """The candidate's exams with the state of their attempt; overdue attempts are closed first."""
    now = now or utcnow()
    exams = db.exec(select(Exam).where(Exam.id.in_(_own_organisation_assignments(candidate_id)))
                    .order_by(Exam.title, Exam.id)).all()
    attempts = {a.exam_id: close_if_overdue(db, a, now)
                for a in db.exec(select(Attempt).where(Attempt.candidate_id == candidate_id))}
    rows = []
    for exam in exams:
        attempt = attempts.get(exam.id)
        status = attempt.status if attempt else AttemptStatus.not_started
        left = (max(0, int((attempt.deadline_at - now).total_seconds()))
                if status == AttemptStatus.in_progress else None)
        rows.append(AssignedExam(exam.id, exam.title, exam.duration_minutes, status, left,
                                 attempt.started_at if attempt else None, attempt.ended_at if attempt else None))
    return rows
