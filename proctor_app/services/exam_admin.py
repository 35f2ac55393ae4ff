"""Exam administration: exam fields and flags, questions, assignments. Every change is audited.

Plain Python on a database session; the caller (the admin page state) has checked the role already.
Every exam is looked up for its actor: an organisation's admin finds only their organisation's
exams ("no exam" for the others) and assigns only its users; new exams join the actor's organisation.
Questions that already have answers keep their kind and every option somebody chose, so
editing a running exam never leaves an answer pointing at something that is gone.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from proctor_app.models import (
    Answer,
    Attempt,
    AttemptStatus,
    AuditLog,
    Exam,
    ExamAssignment,
    Question,
    QuestionKind,
    Role,
    User,
    utcnow,
)
from proctor_app.services.organisations import managed_organisation_id
from proctor_app.services.revocation import Revoked, exam_attempt_ids, notify_after_commit
from proctor_app.services.settings import get_settings

DURATION_RANGE = (1, 600)
SNAPSHOT_INTERVAL_RANGE = (5, 3600)
MAX_TITLE_LENGTH = 200
MAX_PROMPT_LENGTH = 5000
MAX_OPTION_LENGTH = 500
MAX_OPTIONS = 20
FLAGS = ("live_video", "recording", "screen_recording", "recording_required", "snapshots")
EXAM_FIELDS = ("title", "description", "duration_minutes", "snapshot_interval_s", *FLAGS)
ASSIGNABLE_ROLES = (Role.candidate, Role.proctor)


class ExamAdminError(ValueError):
    """A change the rules do not allow; the message is shown to the admin as is."""


@dataclass(frozen=True)
class ExamSummary:
    id: int
    title: str
    duration_minutes: int
    questions: int
    candidates: int
    proctors: int
    attempts: int
    flags: str


def _audit(db: Session, actor_id: int, action: str, exam_id: int, **data) -> None:
    db.add(AuditLog(user_id=actor_id, action=action, target=f"exam:{exam_id}", data=data))


def get_exam(db: Session, actor_id: int, exam_id: int) -> Exam:
    """The exam, if the actor may edit it: not another organisation's, nor an API session's."""
    exam = db.get(Exam, exam_id)
    managed = managed_organisation_id(db, actor_id)
    if exam is None or exam.api_session or managed not in (None, exam.organisation_id):
        raise ExamAdminError(f"There is no exam with id {exam_id}.")
    return exam


def _counts_by_exam(db: Session, query) -> dict[int, int]:
    return {exam_id: count for exam_id, count in db.exec(query)}


def list_exams(db: Session, organisation_id: int | None) -> list[ExamSummary]:
    """The exams of an organisation (None: of all), newest first."""
    questions = _counts_by_exam(db, select(Question.exam_id, func.count()).group_by(Question.exam_id))
    attempts = _counts_by_exam(db, select(Attempt.exam_id, func.count()).group_by(Attempt.exam_id))
    assigned = {}
    for exam_id, role, count in db.exec(
            select(ExamAssignment.exam_id, User.role, func.count())
            .join(User, User.id == ExamAssignment.user_id)
            .group_by(ExamAssignment.exam_id, User.role)):
        assigned[exam_id, role] = count
    query = select(Exam).where(Exam.api_session.is_(False))
    if organisation_id is not None:
        query = query.where(Exam.organisation_id == organisation_id)
    exams = db.exec(query.order_by(Exam.created_at.desc(), Exam.id.desc()))
    return [ExamSummary(id=exam.id, title=exam.title, duration_minutes=exam.duration_minutes,
                        questions=questions.get(exam.id, 0),
                        candidates=assigned.get((exam.id, Role.candidate), 0),
                        proctors=assigned.get((exam.id, Role.proctor), 0),
                        attempts=attempts.get(exam.id, 0),
                        flags=", ".join(flag.replace("_", " ") for flag in FLAGS if getattr(exam, flag)))
            for exam in exams]


def new_exam_defaults(db: Session) -> dict[str, Any]:
    """Field values for a new exam, from the admin settings.

    Screen recording stays off: asking candidates to share their screen is a per-exam decision.
    """
    settings = get_settings(db)
    return {
        "title": "",
        "description": "",
        "duration_minutes": Exam.model_fields["duration_minutes"].default,
        "snapshot_interval_s": settings["snapshot_interval_s"],
        "live_video": settings["live_video_enabled"],
        "recording": settings["recording_enabled"],
        "screen_recording": False,
        "recording_required": settings["recording_enabled"] and settings["recording_required_default"],
        "snapshots": True,
    }


def _whole_number(raw: Any, label: str, bounds: tuple[int, int], problems: list[str]) -> int | None:
    lo, hi = bounds
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(str(raw).strip())
    except ValueError:
        problems.append(f"{label} must be a whole number.")
        return None
    if not lo <= value <= hi:
        problems.append(f"{label} must be between {lo} and {hi}.")
        return None
    return value


def validate_exam_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Clean values for every exam field, or ExamAdminError naming every problem.

    Numbers may come as text (straight from a form); flags must be booleans.
    """
    problems: list[str] = []
    title = str(fields.get("title", "")).strip()
    if not title:
        problems.append("Enter a title.")
    elif len(title) > MAX_TITLE_LENGTH:
        problems.append(f"The title must have at most {MAX_TITLE_LENGTH} characters.")
    clean = {
        "title": title,
        "description": str(fields.get("description", "")).strip(),
        "duration_minutes": _whole_number(fields.get("duration_minutes"), "Duration (minutes)",
                                          DURATION_RANGE, problems),
        "snapshot_interval_s": _whole_number(fields.get("snapshot_interval_s"),
                                             "Snapshot interval (seconds)", SNAPSHOT_INTERVAL_RANGE,
                                             problems),
    }
    for flag in FLAGS:
        if not isinstance(fields.get(flag), bool):
            problems.append(f"{flag.replace('_', ' ').capitalize()} must be on or off.")
        clean[flag] = fields.get(flag) is True
    if clean["recording_required"] and not (clean["recording"] or clean["screen_recording"]):
        problems.append("Recording required needs recording or screen recording turned on.")
    if problems:
        raise ExamAdminError(" ".join(problems))
    return clean


def create_exam(db: Session, actor_id: int, fields: dict[str, Any]) -> Exam:
    """A new exam of the actor's own organisation."""
    exam = Exam(**validate_exam_fields(fields), organisation_id=db.get(User, actor_id).organisation_id)
    db.add(exam)
    db.flush()
    _audit(db, actor_id, "exam_created", exam.id, title=exam.title)
    return exam


def update_exam(db: Session, actor_id: int, exam_id: int, fields: dict[str, Any]) -> Exam:
    exam = get_exam(db, actor_id, exam_id)
    clean = validate_exam_fields(fields)
    changes = {name: [getattr(exam, name), value] for name, value in clean.items()
               if getattr(exam, name) != value}
    if changes:
        for name, (_, value) in changes.items():
            setattr(exam, name, value)
        exam.updated_at = utcnow()
        db.add(exam)
        _audit(db, actor_id, "exam_updated", exam.id, changes=changes)
    return exam


def exam_fields(exam: Exam) -> dict[str, Any]:
    return {name: getattr(exam, name) for name in EXAM_FIELDS}


# Questions

def list_questions(db: Session, exam_id: int) -> list[Question]:
    return list(db.exec(select(Question).where(Question.exam_id == exam_id)
                        .order_by(Question.position, Question.id)))


def split_options(text: str) -> list[str]:
    """One option per line; blank lines and surrounding spaces do not count."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _validate_question(kind: str, prompt: str, options: list[str]) -> tuple[str, list[str]]:
    problems = []
    prompt = prompt.strip()
    if kind not in (QuestionKind.single_choice, QuestionKind.free_text):
        problems.append("The question type must be single choice or free text.")
    if not prompt:
        problems.append("Enter the question text.")
    elif len(prompt) > MAX_PROMPT_LENGTH:
        problems.append(f"The question text must have at most {MAX_PROMPT_LENGTH} characters.")
    options = [option.strip() for option in options if option.strip()]
    if kind == QuestionKind.single_choice:
        if len(options) < 2:
            problems.append("A single choice question needs at least 2 options, one per line.")
        elif len(options) > MAX_OPTIONS:
            problems.append(f"A single choice question can have at most {MAX_OPTIONS} options.")
        if len(set(options)) != len(options):
            problems.append("Each option must be different.")
        if any(len(option) > MAX_OPTION_LENGTH for option in options):
            problems.append(f"An option can have at most {MAX_OPTION_LENGTH} characters.")
    else:
        options = []
    if problems:
        raise ExamAdminError(" ".join(problems))
    return prompt, options


def _get_question(db: Session, actor_id: int, question_id: int) -> Question:
    question = db.get(Question, question_id)
    if question is None:
        raise ExamAdminError("That question no longer exists.")
    get_exam(db, actor_id, question.exam_id)
    return question


def _answer_values(db: Session, question_id: int) -> list[str]:
    return list(db.exec(select(Answer.value).where(Answer.question_id == question_id)))


def add_question(db: Session, actor_id: int, exam_id: int, kind: str, prompt: str,
                 options: list[str]) -> Question:
    get_exam(db, actor_id, exam_id)
    prompt, options = _validate_question(kind, prompt, options)
    last = db.exec(select(func.max(Question.position)).where(Question.exam_id == exam_id)).one()
    question = Question(exam_id=exam_id, position=0 if last is None else last + 1, kind=kind,
                        prompt=prompt, options=options)
    db.add(question)
    db.flush()
    _audit(db, actor_id, "question_added", exam_id, question_id=question.id, kind=kind)
    return question


def update_question(db: Session, actor_id: int, question_id: int, kind: str, prompt: str,
                    options: list[str]) -> Question:
    question = _get_question(db, actor_id, question_id)
    prompt, options = _validate_question(kind, prompt, options)
    answers = _answer_values(db, question_id)
    if answers and kind != question.kind:
        raise ExamAdminError(f"This question already has {len(answers)} answer(s); "
                             "its type cannot change. Add a new question instead.")
    lost = sorted({value for value in answers if value} - set(options)) \
        if kind == QuestionKind.single_choice else []
    if lost:
        raise ExamAdminError("These options were already chosen by candidates and must stay "
                             f"exactly as they are: {', '.join(lost)}.")
    question.kind, question.prompt, question.options = kind, prompt, options
    db.add(question)
    _audit(db, actor_id, "question_updated", question.exam_id, question_id=question.id)
    return question


def delete_question(db: Session, actor_id: int, question_id: int) -> None:
    question = _get_question(db, actor_id, question_id)
    answers = _answer_values(db, question_id)
    if answers:
        raise ExamAdminError(f"This question already has {len(answers)} answer(s) and cannot "
                             "be deleted.")
    exam_id = question.exam_id
    db.delete(question)
    db.flush()
    _renumber(db, list_questions(db, exam_id))
    _audit(db, actor_id, "question_deleted", exam_id, question_id=question_id,
           prompt=question.prompt)


def move_question(db: Session, actor_id: int, question_id: int, offset: int) -> None:
    """Move a question up (offset -1) or down (+1); moving past either end changes nothing."""
    question = _get_question(db, actor_id, question_id)
    questions = list_questions(db, question.exam_id)
    index = next(i for i, q in enumerate(questions) if q.id == question_id)
    target = index + offset
    if offset not in (-1, 1) or not 0 <= target < len(questions):
        return
    questions[index], questions[target] = questions[target], questions[index]
    _renumber(db, questions)
    _audit(db, actor_id, "questions_reordered", question.exam_id,
           order=[q.id for q in questions])


def _renumber(db: Session, questions: list[Question]) -> None:
    for position, question in enumerate(questions):
        if question.position != position:
            question.position = position
            db.add(question)


# Assignments

def assignable_users(db: Session, organisation_id: int) -> list[User]:
    """Who may be assigned to an exam of the organisation: its candidates and proctors."""
    return list(db.exec(select(User).where(User.role.in_(ASSIGNABLE_ROLES), User.organisation_id == organisation_id)
                        .order_by(User.role, User.name, User.email)))


def assigned_user_ids(db: Session, exam_id: int) -> set[int]:
    return set(db.exec(select(ExamAssignment.user_id).where(ExamAssignment.exam_id == exam_id)))


def set_assignments(db: Session, actor_id: int, exam_id: int, user_ids: Iterable[int]) -> None:
    """Make exactly `user_ids` assigned. Candidates who have started the exam stay assigned;
    proctors removed stop watching it at once."""
    exam = get_exam(db, actor_id, exam_id)
    wanted = set(user_ids)
    current = assigned_user_ids(db, exam_id)
    added, removed = wanted - current, current - wanted
    users = {u.id: u for u in db.exec(select(User).where(User.id.in_(added | removed)))}
    problems = []
    for user_id in sorted(added):
        user = users.get(user_id)
        if user is None or user.organisation_id != exam.organisation_id:
            problems.append(f"There is no user with id {user_id}.")
        elif user.role not in ASSIGNABLE_ROLES:
            problems.append(f"{user.name} is a {user.role}; only candidates and proctors are assigned.")
    started = db.exec(select(Attempt.candidate_id).where(
        Attempt.exam_id == exam_id, Attempt.candidate_id.in_(removed),
        Attempt.status != AttemptStatus.not_started)).all()
    for user_id in sorted(started):
        problems.append(f"{users[user_id].name} has already started this exam and stays assigned.")
    if problems:
        raise ExamAdminError(" ".join(problems))
    if not added and not removed:
        return
    for user_id in added:
        db.add(ExamAssignment(exam_id=exam_id, user_id=user_id))
    for assignment in db.exec(select(ExamAssignment).where(ExamAssignment.exam_id == exam_id,
                                                           ExamAssignment.user_id.in_(removed))):
        db.delete(assignment)
    _audit(db, actor_id, "exam_assignments_changed", exam_id,
           added=sorted(added), removed=sorted(removed))
    # A removed proctor's live views of this exam end at once. (A removed candidate has not
    # started, so has no upload token to revoke.)
    proctors = [user_id for user_id in removed if users[user_id].role == Role.proctor]
    if proctors:
        attempt_ids = exam_attempt_ids(db, exam_id)
        for user_id in proctors:
            notify_after_commit(db, Revoked(viewer_id=user_id, attempt_ids=attempt_ids))
