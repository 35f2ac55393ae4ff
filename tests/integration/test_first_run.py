"""First run without the demo data: `python -m proctor_app create-admin`, the /setup rules
(services/first_run.py) and the demo accounts switched off at a start without PROCTOR_DEMO."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from proctor_app.__main__ import main
from proctor_app.auth import sessions
from proctor_app.auth.passwords import verify_password
from proctor_app.db import engine_for, migrate, session_scope
from proctor_app.demo import ALL_DEMO_USERS, DEMO_PASSWORD, disable_demo_accounts, seed_demo
from proctor_app.models import AuditLog, Role, Setting, User
from proctor_app.services import accounts, first_run

ROOT = Path(__file__).resolve().parent.parent.parent
GOOD_PASSWORD = "first-admin-pass-1"


def _email() -> str:
    return f"root-{uuid.uuid4().hex[:10]}@test.example"


def _create_admin_cli(*args: str) -> subprocess.CompletedProcess:
    """The command as an operator runs it, without a terminal (stdin from /dev/null)."""
    return subprocess.run([sys.executable, "-m", "proctor_app", "create-admin", *args], cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


@pytest.fixture
def fresh_db(tmp_path):
    """A database of its own (no admin in it), migrated."""
    url = f"sqlite:///{tmp_path / 'first-run.db'}"
    migrate(url)
    with Session(engine_for(url), expire_on_commit=False) as db:
        yield db
    engine_for(url).dispose()


# --- create-admin -----------------------------------------------------------------------------

def test_create_admin_without_tty_generates_a_password_that_signs_in(demo_db):
    email = _email()
    done = _create_admin_cli("--email", email.upper(), "--name", "Root Admin")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    password = lines[-1]
    assert len(password) >= 20 and " " not in password
    assert f"Created the administrator {email}" in done.stdout
    token, user = sessions.login(email, password)
    assert token and user.role == Role.admin and user.name == "Root Admin"
    with session_scope() as db:
        row = db.exec(select(User).where(User.email == email)).one()
        assert row.active and row.password_hash != password
        assert db.exec(select(AuditLog.action).where(AuditLog.target == f"user:{row.id}")).all() == [
            "user_created"]
    # The same email again: refused with a clear message, exit 2, nothing changed.
    again = _create_admin_cli("--email", email, "--generate")
    assert again.returncode == 2
    assert "exists already" in again.stderr and again.stdout == ""
    with session_scope() as db:
        assert verify_password(password, db.exec(select(User).where(User.email == email)).one().password_hash)


def test_create_admin_refuses_an_existing_demo_email_and_bad_values(demo_db, capsys):
    assert main(["create-admin", "--email", "admin@example.com", "--generate"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["create-admin", "--email", "not-an-email", "--generate"]) == 2
    assert "valid email" in capsys.readouterr().err


def test_create_admin_asks_twice_on_a_terminal(demo_db, monkeypatch, capsys):
    import getpass

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter([GOOD_PASSWORD, "something-else"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    email = _email()
    assert main(["create-admin", "--email", email]) == 2
    assert "differ" in capsys.readouterr().err
    answers = iter(["short", "short"])
    assert main(["create-admin", "--email", email]) == 2
    assert "at least" in capsys.readouterr().err
    answers = iter([GOOD_PASSWORD, GOOD_PASSWORD])
    assert main(["create-admin", "--email", email, "--name", "Typed"]) == 0
    out = capsys.readouterr().out
    assert GOOD_PASSWORD not in out
    assert sessions.login(email, GOOD_PASSWORD)[1].role == Role.admin


# --- /setup rules -------------------------------------------------------------------------------

def test_setup_code_only_while_no_admin_and_only_the_right_one(fresh_db, monkeypatch):
    db = fresh_db
    monkeypatch.delenv(first_run.SETUP_CODE_ENV, raising=False)
    assert not first_run.setup_open(db)
    with pytest.raises(first_run.SetupError, match="not valid"):
        first_run.check_setup(db, "")  # no code issued yet: nothing matches
    code = first_run.issue_setup_code(db)
    assert code and len(code) >= 20
    stored = db.get(Setting, first_run.SETUP_CODE_KEY).value
    assert code not in stored  # only its hash is kept
    assert first_run.setup_open(db)
    for wrong in ("", "x", code[:-1], code + "x"):
        with pytest.raises(first_run.SetupError, match="not valid"):
            first_run.check_setup(db, wrong)
    first_run.check_setup(db, code)
    # A new start, a new code: the old one stops working.
    newer = first_run.issue_setup_code(db)
    assert newer != code
    with pytest.raises(first_run.SetupError, match="not valid"):
        first_run.check_setup(db, code)
    # The same password rules as everywhere; nothing is created on an error.
    with pytest.raises(accounts.AccountError, match="at least"):
        first_run.create_first_admin(db, newer, "first@test.example", "First", "short", "short")
    with pytest.raises(accounts.AccountError, match="differ"):
        first_run.create_first_admin(db, newer, "first@test.example", "First", GOOD_PASSWORD, "other-pass-1")
    with pytest.raises(first_run.SetupError, match="not valid"):
        first_run.create_first_admin(db, code, "first@test.example", "First", GOOD_PASSWORD, GOOD_PASSWORD)
    assert db.exec(select(User)).all() == []
    admin = first_run.create_first_admin(db, newer, " First@Test.example ", "First Admin", GOOD_PASSWORD,
                                         GOOD_PASSWORD)
    assert (admin.email, admin.role, admin.active) == ("first@test.example", Role.admin, True)
    # Closed for ever after: even the right code is refused, and a restart issues none.
    assert not first_run.setup_open(db)
    with pytest.raises(first_run.SetupError, match="administrator exists"):
        first_run.create_first_admin(db, newer, "second@test.example", "Second", GOOD_PASSWORD, GOOD_PASSWORD)
    assert first_run.issue_setup_code(db) is None
    assert db.get(Setting, first_run.SETUP_CODE_KEY) is None


def test_setup_code_from_the_environment_for_automation(fresh_db, monkeypatch):
    monkeypatch.setenv(first_run.SETUP_CODE_ENV, "automation-code-123")
    assert first_run.issue_setup_code(fresh_db) == "automation-code-123"
    first_run.check_setup(fresh_db, "automation-code-123")


def test_setup_is_closed_on_the_session_database_where_the_demo_admin_exists(demo_db):
    with session_scope() as db:
        assert not first_run.setup_open(db)
        assert first_run.issue_setup_code(db) is None
        with pytest.raises(first_run.SetupError, match="administrator exists"):
            first_run.create_first_admin(db, "anything", _email(), "X", GOOD_PASSWORD, GOOD_PASSWORD)


# --- demo accounts without PROCTOR_DEMO ---------------------------------------------------------

def test_start_without_demo_disables_demo_accounts_with_the_published_password(fresh_db):
    db = fresh_db
    seed_demo(db)
    db.commit()
    users = {u.email: u for u in db.exec(select(User))}
    # One demo account whose owner changed the password stays; one an admin switched off stays off.
    users["bob@example.com"].password_hash = first_run.accounts.hash_password("bobs-own-pass-1")
    accounts.set_active(db, users["admin@example.com"].id, users["carol@example.com"].id, False)
    db.commit()
    disabled = disable_demo_accounts(db)
    db.commit()
    assert sorted(disabled) == sorted(e for e, _, _ in ALL_DEMO_USERS if e not in ("bob@example.com",
                                                                               "carol@example.com"))
    for email in disabled:
        db.refresh(users[email])
        assert not users[email].active
        assert db.exec(select(AuditLog.action).where(AuditLog.target == f"user:{users[email].id}")
                       ).all()[-1] == "demo_account_disabled"
    db.refresh(users["bob@example.com"])
    assert users["bob@example.com"].active
    assert not first_run.active_admin_exists(db)
    assert disable_demo_accounts(db) == []  # a second start: nothing left to do
    # With PROCTOR_DEMO=1 again, the demo is usable again; the admin's own decision stands.
    seed_demo(db)
    db.commit()
    for email in disabled:
        db.refresh(users[email])
        assert users[email].active
    db.refresh(users["carol@example.com"])
    assert not users["carol@example.com"].active
    assert verify_password(DEMO_PASSWORD, users["admin@example.com"].password_hash)
