"""Organisation scoping in the services behind every page: a user of organisation B finds nothing
of the default organisation (A) and A's staff nothing of B; the install's admin sees both. The
refusals are the services' own (what the page handlers call), not hidden buttons."""

import pytest
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import DEFAULT_ORGANISATION_ID, Attempt, Exam, ExamAssignment, Organisation, User
from proctor_app.services import accounts, attempts, exam_admin, legal_holds, live, organisations, review
from tests.support.factories import as_current, current_user, make_user
from tests.support.live_exams import make_live_exam
from tests.support.organisations import make_other_organisation

pytestmark = pytest.mark.usefixtures("demo_db")
INSTALL_ADMIN = "admin@example.com"
PASSWORD = "long-enough-1"


@pytest.fixture(scope="module")
def org_b(demo_db):
    return make_other_organisation()


@pytest.fixture(scope="module")
def attempt_a(demo_db):
    """An attempt in progress of organisation A (the default), with live video."""
    return make_live_exam()


def _listed(user, organisation_id=None) -> set[int]:
    with session_scope() as db:
        allowed = review.reviewable_exam_ids(db, user)
        flt = review.AttemptFilter(organisation_id=organisations.visible_organisation_id(user),
                                   allowed_exam_ids=None if allowed is None else tuple(allowed))
        rows, _ = review.list_attempts(db, flt, page_size=100_000)
    return {row.attempt.id for row in rows}


def test_attempts_list_and_its_exam_filter_show_only_the_users_organisation(org_b, attempt_a):
    admin = current_user(INSTALL_ADMIN)
    assert {attempt_a.attempt_id, org_b.attempt_id} <= _listed(admin)
    for user in (org_b.admin, org_b.supervisor, org_b.proctor):
        listed = _listed(user)
        assert org_b.attempt_id in listed and attempt_a.attempt_id not in listed
    supervisor_a = current_user("supervisor@example.com")
    assert attempt_a.attempt_id in _listed(supervisor_a) and org_b.attempt_id not in _listed(supervisor_a)
    with session_scope() as db:
        offered = {e.id for e in review.reviewable_exams(db, org_b.supervisor, None)}
        assert org_b.exam_id in offered and attempt_a.exam_id not in offered
        assert {attempt_a.exam_id, org_b.exam_id} <= {e.id for e in review.reviewable_exams(db, admin, None)}
        # Filtering by A's exam id gives B's users nothing either.
        flt = review.AttemptFilter(organisation_id=org_b.organisation_id, exam_id=attempt_a.exam_id)
        assert review.list_attempts(db, flt)[1] == 0


def test_another_organisations_attempt_is_not_found_on_the_video_page_and_refused_to_change(org_b, attempt_a):
    with session_scope() as db:
        for user in (org_b.admin, org_b.supervisor, org_b.proctor):
            assert review.attempt_media(db, user, attempt_a.attempt_id) is None  # the page's not-found state
            assert not review.may_review(db, user, db.get(Attempt, attempt_a.attempt_id))
            with pytest.raises(review.ReviewError, match="No such attempt"):
                review.save_review(db, attempt_a.attempt_id, "clear", "", user)
            assert review.reprocess(db, attempt_a.attempt_id, user) is False
        with pytest.raises(legal_holds.LegalHoldError, match="No such attempt"):
            legal_holds.change_legal_hold(db, attempt_a.attempt_id, True, "audit", org_b.supervisor)
        assert review.attempt_media(db, current_user(INSTALL_ADMIN), org_b.attempt_id) is not None
        assert review.attempt_media(db, org_b.supervisor, org_b.attempt_id) is not None
        assert review.attempt_media(db, current_user("supervisor@example.com"), org_b.attempt_id) is None
        assert db.get(Attempt, attempt_a.attempt_id).review_status == "not_reviewed"


def test_live_grid_lists_only_the_users_organisation(org_b, attempt_a):
    with session_scope() as db:
        for user, mine, theirs in [(org_b.supervisor, org_b, attempt_a), (org_b.admin, org_b, attempt_a),
                                   (current_user("supervisor@example.com"), attempt_a, org_b)]:
            watched = {row[0] for row in live.attempts_in_progress(db, user, live.LiveFilter())}
            assert mine.attempt_id in watched and theirs.attempt_id not in watched
            exams = {exam_id for exam_id, _ in live.exams_in_progress(db, user)}
            assert mine.exam_id in exams and theirs.exam_id not in exams
            assert not live.may_watch(db, user, db.get(Attempt, theirs.attempt_id))
        watched = {row[0] for row in live.attempts_in_progress(db, org_b.proctor, live.LiveFilter())}
        assert watched == {org_b.attempt_id}
        everything = {row[0] for row in live.attempts_in_progress(db, current_user(INSTALL_ADMIN), live.LiveFilter())}
        assert {org_b.attempt_id, attempt_a.attempt_id} <= everything


def test_an_assignment_to_another_organisations_exam_gives_nothing(org_b, attempt_a):
    """A left-over row (a user moved between organisations) does not let a candidate take, nor a
    proctor watch, an exam of the old organisation."""
    with session_scope() as db:
        db.add(ExamAssignment(exam_id=attempt_a.exam_id, user_id=org_b.candidate.id))
        db.add(ExamAssignment(exam_id=attempt_a.exam_id, user_id=org_b.proctor.id))
    with session_scope() as db:
        assert [row.exam_id for row in attempts.assigned_exams(db, org_b.candidate.id)] == [org_b.exam_id]
        with pytest.raises(attempts.AttemptError, match="not assigned"):
            attempts.attempt_for(db, attempt_a.exam_id, org_b.candidate.id)
        assert not live.may_watch(db, org_b.proctor, db.get(Attempt, attempt_a.attempt_id))
        assert attempts.assigned_exam_ids(db, org_b.proctor.id) == [org_b.exam_id]


def test_an_organisation_admin_manages_only_their_users(org_b, attempt_a):
    admin_b = org_b.admin.id
    with session_scope() as db:
        user_a = make_user(db, password=PASSWORD)
        a_id = user_a.id
        listed = {u.id for u in accounts.list_users(db, org_b.organisation_id, page_size=10_000)[0]}
        assert org_b.candidate.id in listed and a_id not in listed
        assert a_id in {u.id for u in accounts.list_users(db, None, search=user_a.email)[0]}
    refusals = [
        lambda db: accounts.set_active(db, admin_b, a_id, False),
        lambda db: accounts.reset_password(db, admin_b, a_id, PASSWORD + "x"),
        lambda db: accounts.change_role(db, admin_b, a_id, "proctor"),
        lambda db: accounts.logout_everywhere(db, admin_b, a_id),
        lambda db: accounts.move_user(db, admin_b, a_id, org_b.organisation_id),
    ]
    for refused in refusals:
        with session_scope() as db, pytest.raises(accounts.AccountError, match="No such user"):
            refused(db)
    with session_scope() as db:
        user = db.get(User, a_id)
        assert user.active and user.role == "candidate" and user.organisation_id == DEFAULT_ORGANISATION_ID


def test_only_install_admins_create_install_admins_or_users_of_other_organisations(org_b):
    with session_scope() as db:
        for kwargs in [dict(organisation_id=DEFAULT_ORGANISATION_ID), dict(install_admin=True)]:
            with pytest.raises(accounts.AccountError, match="Only an install admin"):
                accounts.create_user(db, org_b.admin.id, f"x-{id(kwargs)}@b.example", "X", "admin", PASSWORD,
                                     **kwargs)
        own = accounts.create_user(db, org_b.admin.id, f"own-{org_b.slug}@b.example", "Own", "proctor", PASSWORD)
        assert own.organisation_id == org_b.organisation_id and not own.is_install_admin
        with pytest.raises(accounts.AccountError, match="Only an install admin"):
            accounts.move_user(db, org_b.admin.id, own.id, DEFAULT_ORGANISATION_ID)
        install_admin = current_user(INSTALL_ADMIN).id
        made = accounts.create_user(db, install_admin, f"ia-{org_b.slug}@b.example", "IA", "admin", PASSWORD,
                                    organisation_id=org_b.organisation_id, install_admin=True)
        assert made.is_install_admin and made.organisation_id == org_b.organisation_id
        with pytest.raises(accounts.AccountError, match="admin role"):
            accounts.create_user(db, install_admin, f"c-{org_b.slug}@b.example", "C", "candidate", PASSWORD,
                                 install_admin=True)
        # An organisation's admin cannot touch an install admin, even one of their organisation.
        with pytest.raises(accounts.AccountError, match="Only an install admin"):
            accounts.set_active(db, org_b.admin.id, made.id, False)


def test_an_install_admin_moves_a_user_and_their_assignments_end(org_b, attempt_a):
    install_admin = current_user(INSTALL_ADMIN).id
    with session_scope() as db:
        mover = make_user(db, role="proctor", password=PASSWORD)
        db.add(ExamAssignment(exam_id=attempt_a.exam_id, user_id=mover.id))
        mover_id = mover.id
    with session_scope() as db:
        accounts.move_user(db, install_admin, mover_id, org_b.organisation_id)
    with session_scope() as db:
        assert db.get(User, mover_id).organisation_id == org_b.organisation_id
        assert db.exec(select(ExamAssignment).where(ExamAssignment.user_id == mover_id)).all() == []
        with pytest.raises(accounts.AccountError, match="No such organisation"):
            accounts.move_user(db, install_admin, mover_id, 10**9)


def test_an_organisation_admin_edits_only_their_exams_and_assigns_only_their_users(org_b, attempt_a):
    admin_b = org_b.admin.id
    with session_scope() as db:
        listed = {s.id for s in exam_admin.list_exams(db, org_b.organisation_id)}
        assert org_b.exam_id in listed and attempt_a.exam_id not in listed
        fields = exam_admin.exam_fields(db.get(Exam, attempt_a.exam_id))
    refusals = [
        lambda db: exam_admin.get_exam(db, admin_b, attempt_a.exam_id),
        lambda db: exam_admin.update_exam(db, admin_b, attempt_a.exam_id, {**fields, "title": "taken over"}),
        lambda db: exam_admin.add_question(db, admin_b, attempt_a.exam_id, "free_text", "Mine?", []),
        lambda db: exam_admin.set_assignments(db, admin_b, attempt_a.exam_id, []),
    ]
    for refused in refusals:
        with session_scope() as db, pytest.raises(exam_admin.ExamAdminError, match="no exam"):
            refused(db)
    with session_scope() as db:
        user_a = make_user(db, role="candidate")
        with pytest.raises(exam_admin.ExamAdminError, match="no user"):
            exam_admin.set_assignments(db, admin_b, org_b.exam_id, [org_b.candidate.id, org_b.proctor.id, user_a.id])
        assert {u.id for u in exam_admin.assignable_users(db, org_b.organisation_id)} >= {org_b.candidate.id}
        assert user_a.id not in {u.id for u in exam_admin.assignable_users(db, org_b.organisation_id)}
        created = exam_admin.create_exam(db, admin_b, {**fields, "title": "B's new exam"})
        assert created.organisation_id == org_b.organisation_id
    with session_scope() as db:
        assert db.get(Exam, attempt_a.exam_id).title == fields["title"]


def test_organisations_are_managed_by_install_admins_only(org_b):
    install_admin = current_user(INSTALL_ADMIN).id
    with session_scope() as db:
        for refused in [lambda: organisations.list_organisations(db, org_b.admin.id),
                        lambda: organisations.create_organisation(db, org_b.admin.id, "by-b", "By B"),
                        lambda: organisations.rename_organisation(db, org_b.admin.id, org_b.organisation_id, "x"),
                        lambda: organisations.set_allowed_origins(db, org_b.admin.id, org_b.organisation_id,
                                                                  "https://evil.example")]:
            with pytest.raises(organisations.OrganisationError, match="install's administrators"):
                refused()
        summary = {s.organisation.id: s for s in organisations.list_organisations(db, install_admin)}
        mine = summary[org_b.organisation_id]
        assert (mine.users, mine.exams, mine.attempts) >= (4, 1, 1)
        organisations.rename_organisation(db, install_admin, org_b.organisation_id, "  Renamed B ")
        organisations.set_allowed_origins(db, install_admin, org_b.organisation_id,
                                          "https://LMS.example.com/\nhttp://localhost:8080, https://lms.example.com")
        with pytest.raises(organisations.OrganisationError, match="Not an origin"):
            organisations.set_allowed_origins(db, install_admin, org_b.organisation_id, "https://x.example/path")
        with pytest.raises(organisations.OrganisationError, match="exists already"):
            organisations.create_organisation(db, install_admin, org_b.slug, "Again")
        with pytest.raises(organisations.OrganisationError, match="slug"):
            organisations.create_organisation(db, install_admin, "Not a slug!", "Bad")
    with session_scope() as db:
        organisation = db.get(Organisation, org_b.organisation_id)
        assert organisation.name == "Renamed B"
        assert organisation.allowed_origins == ["https://lms.example.com", "http://localhost:8080"]


def test_an_admin_demoted_keeps_no_install_wide_view():
    with session_scope() as db:
        former = make_user(db, role="supervisor", is_install_admin=True, organisation_id=DEFAULT_ORGANISATION_ID)
        assert organisations.visible_organisation_id(as_current(former)) == DEFAULT_ORGANISATION_ID
