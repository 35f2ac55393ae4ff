"""Demo data: one admin (of the whole install), one proctor, one supervisor, three candidates and
a demo exam in the default organisation; and a second organisation with its own admin, proctor,
candidate and exam, so that organisations can be seen not to see each other.

Idempotent: running it again changes nothing that is already there. The demo accounts' password is
published, so they are usable only while the app runs with PROCTOR_DEMO=1: a start without it
deactivates every demo account whose password is still the demo one (`disable_demo_accounts`), a
start with it turns them on again.
"""

import os

from sqlmodel import Session, select

from proctor_app.auth.passwords import hash_password, verify_password
from proctor_app.auth.sessions import revoke_user_sessions
from proctor_app.models import (
    DEFAULT_ORGANISATION_ID,
    AuditLog,
    Exam,
    ExamAssignment,
    Question,
    QuestionKind,
    Role,
    User,
)
from proctor_app.services.organisations import ensure_organisation

DEMO_PASSWORD = "demo-pass-1"
DEMO_USERS = [
    ("admin@example.com", "Ada Admin", Role.admin),
    ("proctor@example.com", "Pat Proctor", Role.proctor),
    ("supervisor@example.com", "Sam Supervisor", Role.supervisor),
    ("alice@example.com", "Alice Candidate", Role.candidate),
    ("bob@example.com", "Bob Candidate", Role.candidate),
    ("carol@example.com", "Carol Candidate", Role.candidate),
]
DEMO_EXAM_TITLE = "Demo exam: general knowledge"
SECOND_ORGANISATION = ("northwind", "Northwind College")
SECOND_DEMO_USERS = [
    ("admin@northwind.example", "Nora Northwind-Admin", Role.admin),
    ("proctor@northwind.example", "Nick Northwind-Proctor", Role.proctor),
    ("dave@northwind.example", "Dave Candidate", Role.candidate),
]
SECOND_DEMO_EXAM_TITLE = "Northwind exam: general knowledge"
ALL_DEMO_USERS = DEMO_USERS + SECOND_DEMO_USERS
DEMO_QUESTIONS = [
    (QuestionKind.single_choice, "Which planet is closest to the Sun?",
     ["Venus", "Mercury", "Mars", "Earth"]),
    (QuestionKind.single_choice, "How many bytes are in a kibibyte?", ["1000", "1024", "512", "2048"]),
    (QuestionKind.free_text, "In one sentence: why do exams use a time limit?", []),
    (QuestionKind.single_choice, "Which gas do plants take in?", ["Oxygen", "Nitrogen", "Carbon dioxide"]),
]


def demo_mode() -> bool:
    return os.environ.get("PROCTOR_DEMO") == "1"


def _with_demo_password(db: Session, active: bool) -> list[User]:
    """The demo emails' accounts in the given state whose password is still the published one
    (one argon2 check per demo account, none for any other user)."""
    emails = [email for email, _, _ in ALL_DEMO_USERS]
    rows = db.exec(select(User).where(User.email.in_(emails), User.active == active))  # noqa: E712
    return [user for user in rows if verify_password(DEMO_PASSWORD, user.password_hash)]


def _audit(db: Session, action: str, user: User) -> None:
    db.add(AuditLog(user_id=None, action=action, target=f"user:{user.id}", data={"email": user.email}))


def disable_demo_accounts(db: Session) -> list[str]:
    """At a start without PROCTOR_DEMO: deactivate (and sign out) every demo account that still has
    the published password; returns their emails."""
    disabled = []
    for user in _with_demo_password(db, active=True):
        user.active = False
        db.add(user)
        revoke_user_sessions(db, user.id)
        _audit(db, "demo_account_disabled", user)
        disabled.append(user.email)
    return disabled


def _seed_users(db: Session, specs: list, organisation_id: int) -> list[User]:
    users = []
    for email, name, role in specs:
        user = db.exec(select(User).where(User.email == email)).first()
        if user is None:
            user = User(email=email, name=name, role=role, password_hash=hash_password(DEMO_PASSWORD),
                        organisation_id=organisation_id,
                        is_install_admin=role == Role.admin and organisation_id == DEFAULT_ORGANISATION_ID)
            db.add(user)
            db.flush()
        users.append(user)
    return users


def _seed_exam(db: Session, title: str, organisation_id: int, users: list[User]) -> None:
    if db.exec(select(Exam).where(Exam.title == title)).first() is not None:
        return
    exam = Exam(title=title, duration_minutes=20, organisation_id=organisation_id,
                description="Four short questions. Camera and microphone are recorded.",
                live_video=True, recording=True, screen_recording=False,
                recording_required=True, snapshot_interval_s=60)
    db.add(exam)
    db.flush()
    for position, (kind, prompt, options) in enumerate(DEMO_QUESTIONS):
        db.add(Question(exam_id=exam.id, position=position, kind=kind, prompt=prompt, options=options))
    for user in users:
        if user.role in (Role.candidate, Role.proctor):
            db.add(ExamAssignment(exam_id=exam.id, user_id=user.id))


def seed_demo(db: Session) -> None:
    second = ensure_organisation(db, *SECOND_ORGANISATION)
    users = _seed_users(db, DEMO_USERS, DEFAULT_ORGANISATION_ID)
    second_users = _seed_users(db, SECOND_DEMO_USERS, second.id)
    # Turned off by an earlier start without PROCTOR_DEMO (not by an admin): on again.
    for user in _with_demo_password(db, active=False):
        last = db.exec(select(AuditLog.action).where(
            AuditLog.target == f"user:{user.id}",
            AuditLog.action.in_(["demo_account_disabled", "user_deactivated"])
        ).order_by(AuditLog.id.desc())).first()
        if last != "demo_account_disabled":
            continue
        user.active = True
        db.add(user)
        _audit(db, "demo_account_enabled", user)
    _seed_exam(db, DEMO_EXAM_TITLE, DEFAULT_ORGANISATION_ID, users)
    _seed_exam(db, SECOND_DEMO_EXAM_TITLE, second.id, second_users)


def describe_demo(url: str) -> str:
    lines = [f"Proctor app running at {url}", f"Demo accounts (password: {DEMO_PASSWORD}):"]
    lines += [f"  {role:<10} {email}" for email, _, role in DEMO_USERS]
    lines += [f"Organisation {SECOND_ORGANISATION[0]} (sees none of the above, nor they its data):"]
    lines += [f"  {role:<10} {email}" for email, _, role in SECOND_DEMO_USERS]
    return "\n".join(lines)
