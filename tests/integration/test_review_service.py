"""The reviewers' service without a browser, on the test session's database: list filters and
pages, retention notice, saving a review, legal holds. (Its rules on rows in memory: unit tests.)"""

from datetime import timedelta

import pytest
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import Attempt, AuditLog, Recording, RecordingStatus, ReviewStatus, User, utcnow
from proctor_app.services import legal_holds, review
from tests.support.factories import current_user, make_attempt, user_id
from tests.support.review_media import make_review_attempt


@pytest.fixture(scope="module")
def made(demo_db):
    return {"completed": make_review_attempt(), "expired": make_review_attempt(RecordingStatus.expired, 40),
            "processing": make_review_attempt(RecordingStatus.processing, 3)}


def _candidate_email(attempt) -> str:
    with session_scope() as db:
        return db.get(User, attempt.candidate_id).email


def _ids(flt: review.AttemptFilter, **kw) -> list[int]:
    with session_scope() as db:
        listings, _ = review.list_attempts(db, flt, **kw)
    return [item.attempt.id for item in listings]


def test_filters_pick_exactly_the_matching_attempts(made):
    completed, expired, processing = made["completed"], made["expired"], made["processing"]
    mine = {completed.attempt_id, expired.attempt_id, processing.attempt_id}
    assert _ids(review.AttemptFilter(exam_id=completed.exam_id)) == [completed.attempt_id]
    by_recording = {status: set(_ids(review.AttemptFilter(recording_status=status), page_size=1000)) & mine
                    for status in (RecordingStatus.completed, RecordingStatus.expired, RecordingStatus.processing)}
    assert by_recording == {RecordingStatus.completed: {completed.attempt_id},
                            RecordingStatus.expired: {expired.attempt_id},
                            RecordingStatus.processing: {processing.attempt_id}}
    assert not set(_ids(review.AttemptFilter(recording_status=review.NO_RECORDING), page_size=1000)) & mine
    email = _candidate_email(completed)
    assert _ids(review.AttemptFilter(candidate=email.upper()[3:])) == [completed.attempt_id]
    # Search text is literal: % and _ are not wildcards.
    assert _ids(review.AttemptFilter(candidate="%")) == []
    day = completed.started_at.date()
    assert completed.attempt_id in _ids(review.AttemptFilter(started_from=day, started_to=day), page_size=1000)
    assert completed.attempt_id not in _ids(review.AttemptFilter(started_to=day - timedelta(days=1)),
                                            page_size=1000)
    assert completed.attempt_id not in _ids(review.AttemptFilter(started_from=day + timedelta(days=1)),
                                            page_size=1000)
    # 40 days ago is before 3 days ago: newest start first.
    ordered = [i for i in _ids(review.AttemptFilter(candidate="review-"), page_size=1000) if i in mine]
    assert ordered.index(processing.attempt_id) < ordered.index(expired.attempt_id)


def test_attempts_without_recordings_and_review_filter(made):
    attempt = made["completed"]
    with session_scope() as db:
        bare = make_attempt(db, attempt.exam_id, user_id("carol@example.com"))
        bare_id = bare.id
        review.save_review(db, bare_id, ReviewStatus.violation, "", current_user("supervisor@example.com"))
    assert bare_id in _ids(review.AttemptFilter(recording_status=review.NO_RECORDING), page_size=1000)
    assert _ids(review.AttemptFilter(exam_id=attempt.exam_id, review_status=ReviewStatus.violation)) == [bare_id]
    # Never started: listed last, and no recording health.
    assert _ids(review.AttemptFilter(exam_id=attempt.exam_id)) == [attempt.attempt_id, bare_id]


def test_pages_are_disjoint_and_complete(made):
    flt = review.AttemptFilter(candidate="review-")
    with session_scope() as db:
        everything, total = review.list_attempts(db, flt, page_size=1000)
        pages = [review.list_attempts(db, flt, page=n, page_size=2) for n in range(-(-total // 2) + 1)]
    assert total == len(everything) >= 3
    assert all(t == total for _, t in pages)
    paged = [item.attempt.id for listing, _ in pages for item in listing]
    assert paged == [item.attempt.id for item in everything]
    assert pages[-1][0] == []  # past the end: empty, not an error


def test_retention_notice_says_when_and_why(made):
    with session_scope() as db:
        attempt = db.get(Attempt, made["completed"].attempt_id)
        recordings = db.exec(select(Recording).where(Recording.attempt_id == attempt.id)).all()
        due = attempt.ended_at + timedelta(days=30)
        assert review.retention_notice(db, attempt, recordings) == (
            f"This recording will be deleted after 30 days, on {due:%Y-%m-%d}.")
        attempt.legal_hold = True
        assert "legal hold" in review.retention_notice(db, attempt, recordings)
        db.rollback()
        gone = db.get(Attempt, made["expired"].attempt_id)
        expired = db.exec(select(Recording).where(Recording.attempt_id == gone.id)).all()
        expired[0].expired_reason = "The retention period of 30 days after the exam ended (2026-10-12) had passed."
        notice = review.retention_notice(db, gone, expired)
        db.rollback()
    assert notice.startswith("This recording was deleted on ")
    assert "(2026-10-12) had passed. Events and the review are kept." in notice


def test_save_review_checks_input_and_is_audited(made):
    attempt_id, reviewer = made["completed"].attempt_id, current_user("supervisor@example.com")
    with session_scope() as db:
        for status, notes, message in [("great", "", "Choose a review status"),
                                       (ReviewStatus.clear, "x" * (review.MAX_NOTES + 1), "limited")]:
            with pytest.raises(review.ReviewError, match=message):
                review.save_review(db, attempt_id, status, notes, reviewer)
        with pytest.raises(review.ReviewError, match="No such attempt"):
            review.save_review(db, 10**9, ReviewStatus.clear, "", reviewer)
        review.save_review(db, attempt_id, ReviewStatus.clear, "fine", reviewer)
    with session_scope() as db:
        saved = db.get(Attempt, attempt_id)
        audit = db.exec(select(AuditLog).where(AuditLog.action == "review_saved",
                                               AuditLog.target == f"attempt:{attempt_id}")).all()
    assert (saved.review_status, saved.review_notes, saved.reviewed_by) == ("clear", "fine", reviewer.id)
    assert [(a.user_id, a.data["old_status"], a.data["new_status"]) for a in audit] == [
        (reviewer.id, "not_reviewed", "clear")]


def test_proctors_review_only_their_assigned_exams(demo_db):
    theirs, other = make_review_attempt(), make_review_attempt(assign_proctor=False)
    proctor, supervisor = current_user("proctor@example.com"), current_user("supervisor@example.com")
    with session_scope() as db:
        allowed = tuple(review.reviewable_exam_ids(db, proctor))
        assert review.reviewable_exam_ids(db, supervisor) is None
        assert review.reviewable_exam_ids(db, current_user("alice@example.com")) == []
        for attempt, visible in ((theirs, True), (other, False)):
            row = db.get(Attempt, attempt.attempt_id)
            assert review.may_review(db, proctor, row) is visible
            assert review.may_review(db, supervisor, row)
        listed, _ = review.list_attempts(db, review.AttemptFilter(allowed_exam_ids=allowed), page_size=10_000)
        with pytest.raises(review.ReviewError, match="may not review"):
            review.save_review(db, other.attempt_id, ReviewStatus.clear, "", proctor)
    listed_ids = {item.attempt.id for item in listed}
    assert theirs.attempt_id in listed_ids and other.attempt_id not in listed_ids


def test_legal_hold_needs_a_supervisor_or_admin_and_a_reason(made):
    attempt_id = made["processing"].attempt_id
    supervisor, admin = current_user("supervisor@example.com"), current_user("admin@example.com")
    with session_scope() as db:
        # The demo proctor may review this attempt, but not hold it; a forged call is refused.
        for user in (current_user("proctor@example.com"), current_user("alice@example.com")):
            with pytest.raises(legal_holds.LegalHoldError, match="Only supervisors and admins"):
                legal_holds.change_legal_hold(db, attempt_id, True, "appeal 12", user)
        for reason, message in [("  ", "short reason"), ("x" * (legal_holds.MAX_HOLD_REASON + 1), "limited")]:
            with pytest.raises(legal_holds.LegalHoldError, match=message):
                legal_holds.change_legal_hold(db, attempt_id, True, reason, supervisor)
        with pytest.raises(legal_holds.LegalHoldError, match="No such attempt"):
            legal_holds.change_legal_hold(db, 10**9, True, "appeal 12", supervisor)
        assert db.get(Attempt, attempt_id).legal_hold is False
        db.get(Attempt, attempt_id).media_expired_at = utcnow()
        with pytest.raises(legal_holds.LegalHoldError, match="already deleted"):
            legal_holds.change_legal_hold(db, attempt_id, True, "appeal 12", supervisor)
        db.rollback()
    with session_scope() as db:
        assert legal_holds.change_legal_hold(db, attempt_id, True, " appeal 12 ", supervisor).legal_hold
    with session_scope() as db:
        assert legal_holds.change_legal_hold(db, attempt_id, False, "appeal closed", admin).legal_hold is False
        audit = db.exec(select(AuditLog).where(AuditLog.target == f"attempt:{attempt_id}",
                                               AuditLog.action.startswith("legal_hold"))
                        .order_by(AuditLog.id)).all()
    assert [(a.action, a.user_id, a.data) for a in audit] == [
        ("legal_hold_set", supervisor.id, {"reason": "appeal 12"}),
        ("legal_hold_released", admin.id, {"reason": "appeal closed"})]
