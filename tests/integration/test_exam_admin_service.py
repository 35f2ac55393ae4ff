"""Exam administration rules (services/exam_admin.py) against the test session's real database."""

import uuid

import pytest
from sqlmodel import func, select

from proctor_app.db import session_scope
from proctor_app.models import Answer, AuditLog, Exam, ExamAssignment, Question, QuestionKind
from proctor_app.services import attempts, exam_admin
from proctor_app.services.settings import get_settings, update_settings
from tests.support.factories import user_id

pytestmark = pytest.mark.usefixtures("demo_db")


def _fields(**overrides) -> dict:
    fields = {"title": f"Exam {uuid.uuid4().hex[:6]}", "description": "", "duration_minutes": "45",
              "snapshot_interval_s": "30", "live_video": True, "recording": True,
              "screen_recording": False, "recording_required": True,
              "snapshots": True}
    return {**fields, **overrides}


@pytest.fixture
def exam(admin_id) -> Exam:
    with session_scope() as db:
        return exam_admin.create_exam(db, admin_id, _fields())


def _exam_count() -> int:
    with session_scope() as db:
        return db.exec(select(func.count()).select_from(Exam)).one()


def _audit(exam_id: int) -> list[AuditLog]:
    with session_scope() as db:
        return list(db.exec(select(AuditLog).where(AuditLog.target == f"exam:{exam_id}")
                            .order_by(AuditLog.id)))


def _prompts(exam_id: int) -> list[str]:
    with session_scope() as db:
        return [q.prompt for q in exam_admin.list_questions(db, exam_id)]


def test_new_exam_defaults_follow_the_admin_settings(admin_id):
    with session_scope() as db:
        before = get_settings(db)
        update_settings(db, {"recording_required_default": False, "snapshot_interval_s": 120,
                             "live_video_enabled": False}, admin_id)
    try:
        with session_scope() as db:
            defaults = exam_admin.new_exam_defaults(db)
        assert (defaults["recording_required"], defaults["snapshot_interval_s"], defaults["live_video"],
                defaults["recording"], defaults["screen_recording"]) == (False, 120, False, True, False)
        # The defaults are valid input as they are, once the exam has a title.
        exam_admin.validate_exam_fields({**defaults, "title": "Defaults"})
    finally:
        with session_scope() as db:
            update_settings(db, {key: before[key] for key in
                                 ("recording_required_default", "snapshot_interval_s", "live_video_enabled")},
                            admin_id)


@pytest.mark.parametrize("overrides, message", [
    ({"title": "   "}, "Enter a title"),
    ({"title": "x" * 201}, "at most 200"),
    ({"duration_minutes": "0"}, "Duration (minutes) must be between 1 and 600"),
    ({"duration_minutes": "601"}, "Duration (minutes) must be between 1 and 600"),
    ({"duration_minutes": "ninety"}, "Duration (minutes) must be a whole number"),
    ({"duration_minutes": True}, "Duration (minutes) must be a whole number"),
    ({"snapshot_interval_s": "4"}, "Snapshot interval (seconds) must be between 5 and 3600"),
    ({"snapshot_interval_s": "3601"}, "Snapshot interval (seconds) must be between 5 and 3600"),
    ({"recording": False, "screen_recording": False, "recording_required": True},
     "Recording required needs recording or screen recording"),
    ({"live_video": "yes"}, "Live video must be on or off"),
])
def test_invalid_exam_fields_are_refused_and_nothing_is_saved(admin_id, overrides, message):
    before = _exam_count()
    with pytest.raises(exam_admin.ExamAdminError, match=message.replace("(", r"\(").replace(")", r"\)")), \
            session_scope() as db:
        exam_admin.create_exam(db, admin_id, _fields(**overrides))
    assert _exam_count() == before


def test_update_saves_and_audits_only_the_changes(admin_id, exam):
    with session_scope() as db:
        exam_admin.update_exam(db, admin_id, exam.id, {**exam_admin.exam_fields(exam),
                                                       "duration_minutes": "90", "screen_recording": True})
        exam_admin.update_exam(db, admin_id, exam.id, {**exam_admin.exam_fields(exam),
                                                       "duration_minutes": 90, "screen_recording": True})
    with session_scope() as db:
        saved = db.get(Exam, exam.id)
    assert (saved.duration_minutes, saved.screen_recording, saved.title) == (90, True, exam.title)
    rows = _audit(exam.id)
    assert [r.action for r in rows] == ["exam_created", "exam_updated"]
    assert rows[1].data["changes"] == {"duration_minutes": [45, 90], "screen_recording": [False, True]}

    with pytest.raises(exam_admin.ExamAdminError, match="Enter a title"), session_scope() as db:
        exam_admin.update_exam(db, admin_id, exam.id, _fields(title="", duration_minutes="5"))
    with session_scope() as db:
        assert db.get(Exam, exam.id).duration_minutes == 90


def test_questions_are_validated(admin_id, exam):
    cases = [
        (QuestionKind.single_choice, "Pick one", ["Only"], "at least 2 options"),
        (QuestionKind.single_choice, "Pick one", ["Same", "Same"], "Each option must be different"),
        (QuestionKind.single_choice, "  ", ["A", "B"], "Enter the question text"),
        ("essay", "Write", [], "single choice or free text"),
    ]
    for kind, prompt, options, message in cases:
        with pytest.raises(exam_admin.ExamAdminError, match=message), session_scope() as db:
            exam_admin.add_question(db, admin_id, exam.id, kind, prompt, options)
    assert _prompts(exam.id) == []
    with pytest.raises(exam_admin.ExamAdminError, match="no exam with id"), session_scope() as db:
        exam_admin.add_question(db, admin_id, 10**9, QuestionKind.free_text, "Orphan", [])


def test_add_edit_reorder_and_delete_questions(admin_id, exam):
    assert exam_admin.split_options(" Red \n\n  Green\nBlue  \n") == ["Red", "Green", "Blue"]
    with session_scope() as db:
        colour = exam_admin.add_question(db, admin_id, exam.id, QuestionKind.single_choice, "Colour?",
                                         ["Red", "Green"])
        essay = exam_admin.add_question(db, admin_id, exam.id, QuestionKind.free_text, "Why?",
                                        ["ignored for free text"])
        third = exam_admin.add_question(db, admin_id, exam.id, QuestionKind.free_text, "Third?", [])
    assert essay.options == [] and _prompts(exam.id) == ["Colour?", "Why?", "Third?"]

    with session_scope() as db:
        exam_admin.move_question(db, admin_id, third.id, -1)
        exam_admin.move_question(db, admin_id, colour.id, -1)  # already first: nothing moves
        exam_admin.update_question(db, admin_id, colour.id, QuestionKind.free_text, "Favourite colour?", [])
    assert _prompts(exam.id) == ["Favourite colour?", "Third?", "Why?"]

    with session_scope() as db:
        exam_admin.delete_question(db, admin_id, third.id)
        positions = [q.position for q in exam_admin.list_questions(db, exam.id)]
    assert _prompts(exam.id) == ["Favourite colour?", "Why?"] and positions == [0, 1]
    assert [r.action for r in _audit(exam.id)][1:] == [
        "question_added", "question_added", "question_added", "questions_reordered",
        "question_updated", "question_deleted"]


def test_answered_questions_keep_their_kind_and_chosen_options(admin_id, exam):
    alice = user_id("alice@example.com")
    with session_scope() as db:
        choice = exam_admin.add_question(db, admin_id, exam.id, QuestionKind.single_choice, "Capital?",
                                         ["Paris", "Lyon"])
        essay = exam_admin.add_question(db, admin_id, exam.id, QuestionKind.free_text, "Explain.", [])
        exam_admin.set_assignments(db, admin_id, exam.id, [alice])
    with session_scope() as db:
        attempt = attempts.attempt_for(db, exam.id, alice)
        attempts.accept_consent(db, attempt, "I agree")
        attempts.start(db, attempt, clock_offset_ms=0)
        attempts.save_answer(db, attempt, choice.id, "Paris")
        attempts.save_answer(db, attempt, essay.id, "Because.")

    refusals = [
        (lambda db: exam_admin.delete_question(db, admin_id, choice.id), "cannot be deleted"),
        (lambda db: exam_admin.update_question(db, admin_id, essay.id, QuestionKind.single_choice,
                                               "Explain.", ["A", "B"]), "type cannot change"),
        (lambda db: exam_admin.update_question(db, admin_id, choice.id, QuestionKind.single_choice,
                                               "Capital?", ["paris", "Lyon"]), "must stay exactly.*Paris"),
        (lambda db: exam_admin.set_assignments(db, admin_id, exam.id, []), "already started"),
    ]
    for change, message in refusals:
        with pytest.raises(exam_admin.ExamAdminError, match=message), session_scope() as db:
            change(db)

    # Rewording and adding options leaves every answer meaningful.
    with session_scope() as db:
        exam_admin.update_question(db, admin_id, choice.id, QuestionKind.single_choice,
                                   "Capital of France?", ["Lyon", "Paris", "Nice"])
    with session_scope() as db:
        saved = db.get(Question, choice.id)
        answer = db.exec(select(Answer).where(Answer.question_id == choice.id)).one()
        assert saved.kind == QuestionKind.single_choice and answer.value in saved.options
        assert db.get(Question, essay.id).kind == QuestionKind.free_text
        assert exam_admin.assigned_user_ids(db, exam.id) == {alice}


def test_assignments_take_only_candidates_and_proctors(admin_id, exam):
    bob, proctor = user_id("bob@example.com"), user_id("proctor@example.com")
    supervisor = user_id("supervisor@example.com")
    with session_scope() as db:
        exam_admin.set_assignments(db, admin_id, exam.id, [bob, proctor])
    for wanted, message in (([bob, supervisor], "only candidates and proctors"),
                            ([bob, 10**9], "no user with id")):
        with pytest.raises(exam_admin.ExamAdminError, match=message), session_scope() as db:
            exam_admin.set_assignments(db, admin_id, exam.id, wanted)
    with session_scope() as db:
        assert exam_admin.assigned_user_ids(db, exam.id) == {bob, proctor}
        exam_admin.set_assignments(db, admin_id, exam.id, [proctor])
    with session_scope() as db:
        rows = db.exec(select(ExamAssignment.user_id).where(ExamAssignment.exam_id == exam.id)).all()
    assert rows == [proctor]
    changes = [r.data for r in _audit(exam.id) if r.action == "exam_assignments_changed"]
    assert changes == [{"added": sorted([bob, proctor]), "removed": []}, {"added": [], "removed": [bob]}]

    with session_scope() as db:
        summary = next(s for s in exam_admin.list_exams(db, None) if s.id == exam.id)
    assert (summary.candidates, summary.proctors, summary.questions, summary.attempts) == (0, 1, 0, 0)
    assert summary.flags == "live video, recording, recording required, snapshots"
