"""Demo data: one admin, one proctor, one supervisor, three candidates and a demo exam.

Idempotent: running it again changes nothing that is already there.
"""

from sqlmodel import Session, select

from proctor_app.auth.passwords import hash_password
from proctor_app.models import Exam, ExamAssignment, Question, QuestionKind, Role, User

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
DEMO_QUESTIONS = [
    (QuestionKind.single_choice, "Which planet is closest to the Sun?",
     ["Venus", "Mercury", "Mars", "Earth"]),
    (QuestionKind.single_choice, "How many bytes are in a kibibyte?", ["1000", "1024", "512", "2048"]),
    (QuestionKind.free_text, "In one sentence: why do exams use a time limit?", []),
    (QuestionKind.single_choice, "Which gas do plants take in?", ["Oxygen", "Nitrogen", "Carbon dioxide"]),
]


def seed_demo(db: Session) -> None:
    users = {}
    for email, name, role in DEMO_USERS:
        user = db.exec(select(User).where(User.email == email)).first()
        if user is None:
            user = User(email=email, name=name, role=role, password_hash=hash_password(DEMO_PASSWORD))
            db.add(user)
            db.flush()
        users[email] = user
    exam = db.exec(select(Exam).where(Exam.title == DEMO_EXAM_TITLE)).first()
    if exam is None:
        exam = Exam(title=DEMO_EXAM_TITLE, duration_minutes=20,
                    description="Four short questions. Camera and microphone are recorded.",
                    live_video=True, recording=True, screen_recording=False,
                    recording_required=True, snapshot_interval_s=60)
        db.add(exam)
        db.flush()
        for position, (kind, prompt, options) in enumerate(DEMO_QUESTIONS):
            db.add(Question(exam_id=exam.id, position=position, kind=kind, prompt=prompt, options=options))
        for user in users.values():
            if user.role in (Role.candidate, Role.proctor):
                db.add(ExamAssignment(exam_id=exam.id, user_id=user.id))


def describe_demo(url: str) -> str:
    lines = [f"Proctor app running at {url}", f"Demo accounts (password: {DEMO_PASSWORD}):"]
    lines += [f"  {role:<10} {email}" for email, _, role in DEMO_USERS]
    return "\n".join(lines)
