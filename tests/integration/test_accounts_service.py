"""User administration rules (services/accounts.py) against the test session's real database."""

import uuid

import pytest
from sqlmodel import select

from proctor_app.auth import sessions
from proctor_app.auth.passwords import MIN_PASSWORD_LENGTH
from proctor_app.db import session_scope
from proctor_app.models import AuditLog, LoginSession, Role, User
from proctor_app.services import accounts

pytestmark = pytest.mark.usefixtures("demo_db")
PASSWORD = "first-pass-1"


def _unique_email() -> str:
    return f"acc-{uuid.uuid4().hex[:10]}@test.example"


@pytest.fixture
def user(admin_id) -> User:
    with session_scope() as db:
        return accounts.create_user(db, admin_id, _unique_email(), "Test Candidate", Role.candidate,
                                    PASSWORD)


def _audit_actions(user_id: int) -> list[str]:
    with session_scope() as db:
        return list(db.exec(select(AuditLog.action).where(AuditLog.target == f"user:{user_id}")
                            .order_by(AuditLog.id)))


def test_create_user_normalises_email_and_can_log_in(admin_id):
    email = _unique_email()
    with session_scope() as db:
        created = accounts.create_user(db, admin_id, f"  {email.upper()} ", "  Dana Doe ",
                                       Role.proctor, PASSWORD)
    assert (created.email, created.name, created.role, created.active) == (email, "Dana Doe", "proctor", True)
    token, current = sessions.login(email, PASSWORD)
    assert current.id == created.id and sessions.user_for_token(token).role == "proctor"
    assert _audit_actions(created.id) == ["user_created"]


def test_duplicate_email_is_refused_whatever_its_case(admin_id, user):
    with pytest.raises(accounts.AccountError, match="already exists"), session_scope() as db:
        accounts.create_user(db, admin_id, user.email.upper(), "Someone Else", Role.candidate, PASSWORD)
    with session_scope() as db:
        assert len(db.exec(select(User).where(User.email == user.email)).all()) == 1


def test_every_invalid_field_is_reported_and_nothing_is_saved(admin_id):
    with pytest.raises(accounts.AccountError) as caught, session_scope() as db:
        accounts.create_user(db, admin_id, "not-an-email", "  ", "superuser", "x" * (MIN_PASSWORD_LENGTH - 1))
    message = str(caught.value)
    for expected in ("valid email", "name", "Role must be one of", f"at least {MIN_PASSWORD_LENGTH}"):
        assert expected in message
    with session_scope() as db:
        assert db.exec(select(User).where(User.email == "not-an-email")).first() is None


def test_deactivation_ends_open_sessions_and_blocks_login(admin_id, user):
    token, _ = sessions.login(user.email, PASSWORD)
    other_token, _ = sessions.login(user.email, PASSWORD)
    with session_scope() as db:
        accounts.set_active(db, admin_id, user.id, False)
    assert sessions.user_for_token(token) is None and sessions.user_for_token(other_token) is None
    with session_scope() as db:
        open_rows = db.exec(select(LoginSession).where(LoginSession.user_id == user.id,
                                                       LoginSession.revoked_at.is_(None))).all()
    assert open_rows == []
    with pytest.raises(sessions.LoginError, match="deactivated"):
        sessions.login(user.email, PASSWORD)

    with session_scope() as db:
        accounts.set_active(db, admin_id, user.id, True)
    assert sessions.user_for_token(sessions.login(user.email, PASSWORD)[0]) is not None
    assert _audit_actions(user.id) == ["user_created", "user_deactivated", "user_reactivated"]


def test_admin_cannot_deactivate_or_demote_themself(admin_id):
    with pytest.raises(accounts.AccountError, match="your own account"), session_scope() as db:
        accounts.set_active(db, admin_id, admin_id, False)
    with pytest.raises(accounts.AccountError, match="your own role"), session_scope() as db:
        accounts.change_role(db, admin_id, admin_id, Role.candidate)
    with session_scope() as db:
        me = db.get(User, admin_id)
        assert (me.active, me.role) == (True, "admin")


def test_change_role_is_audited_with_old_and_new(admin_id, user):
    token, _ = sessions.login(user.email, PASSWORD)
    with session_scope() as db:
        accounts.change_role(db, admin_id, user.id, Role.supervisor)
    # What the old role could do ends: its open sessions too (tests/integration/test_revocation.py).
    assert sessions.user_for_token(token) is None
    with session_scope() as db:
        row = db.exec(select(AuditLog).where(AuditLog.target == f"user:{user.id}",
                                             AuditLog.action == "role_changed")).one()
    assert (row.user_id, row.data["old"], row.data["new"]) == (admin_id, "candidate", "supervisor")
    with pytest.raises(accounts.AccountError, match="Role must be one of"), session_scope() as db:
        accounts.change_role(db, admin_id, user.id, "owner")


def test_password_reset_ends_sessions(admin_id, user):
    token, _ = sessions.login(user.email, PASSWORD)
    with session_scope() as db:
        accounts.reset_password(db, admin_id, user.id, "second-pass-2")
    assert sessions.user_for_token(token) is None
    with pytest.raises(sessions.LoginError, match="Wrong email or password"):
        sessions.login(user.email, PASSWORD)
    assert sessions.login(user.email, "second-pass-2")[1].id == user.id
    assert _audit_actions(user.id)[-1] == "password_reset"


def test_short_reset_password_changes_nothing(admin_id, user):
    token, _ = sessions.login(user.email, PASSWORD)
    with pytest.raises(accounts.AccountError, match=f"at least {MIN_PASSWORD_LENGTH}"), session_scope() as db:
        accounts.reset_password(db, admin_id, user.id, "short")
    assert sessions.user_for_token(token) is not None
    assert sessions.login(user.email, PASSWORD)[1].id == user.id


def test_unknown_user_is_a_clear_error(admin_id):
    with pytest.raises(accounts.AccountError, match="No such user"), session_scope() as db:
        accounts.set_active(db, admin_id, 10**9, False)
