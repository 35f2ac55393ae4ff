"""First run: creating the first administrator without the demo data.

Two ways, both through `create_first_admin`'s rules (those of services/accounts.py):
- `python -m proctor_app create-admin --email E` (any time; refuses an email that exists);
- the `/setup` page, only while no active admin exists, with the one-time setup code the server
  prints in its log at start-up when no admin exists. The database keeps only the code's SHA-256
  (a Setting row that is no admin setting), so every app process checks the same code; each
  start issues a new one. `PROCTOR_SETUP_CODE`, when set, is used instead of a random code: for
  automation (tests, provisioning) that cannot read the log.
"""

import hashlib
import hmac
import os
import secrets

from sqlmodel import Session, select

from proctor_app.models import Role, Setting, User, utcnow
from proctor_app.services import accounts

SETUP_CODE_KEY = "first_run_setup_code_sha256"
SETUP_CODE_ENV = "PROCTOR_SETUP_CODE"
GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 random bits
WRONG_CODE = "That setup code is not valid. Use the code from the server log of its latest start."
SETUP_CLOSED = "Set-up is closed: an administrator exists already. Sign in instead."


class SetupError(ValueError):
    """A refused first-run request; the message is shown as is."""


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def active_admin_exists(db: Session) -> bool:
    return db.exec(select(User.id).where(User.role == Role.admin, User.active == True)  # noqa: E712
                   ).first() is not None


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def create_admin(db: Session, email: str, name: str, password: str, organisation_id: int | None = None) -> User:
    """An active admin, created by the operator (no signed-in actor): of the whole install, or with
    `organisation_id` of that organisation only; AccountError on any rule."""
    email = accounts.normalise_email(email)
    return accounts.create_user(db, None, email=email, name=name or email.split("@")[0], role=Role.admin,
                                password=password, organisation_id=organisation_id,
                                install_admin=organisation_id is None)


def issue_setup_code(db: Session) -> str | None:
    """At start-up: a new setup code when no active admin exists (its hash replaces the last
    one's), else None and no code is kept."""
    row = db.get(Setting, SETUP_CODE_KEY)
    if active_admin_exists(db):
        if row is not None:
            db.delete(row)
        return None
    code = os.environ.get(SETUP_CODE_ENV, "").strip() or secrets.token_urlsafe(16)
    row = row or Setting(key=SETUP_CODE_KEY, value="")
    row.value, row.updated_at = _digest(code), utcnow()
    db.add(row)
    return code


def setup_open(db: Session) -> bool:
    """Whether /setup may be used at all: no active admin, and a code was issued."""
    return not active_admin_exists(db) and db.get(Setting, SETUP_CODE_KEY) is not None


def check_setup(db: Session, code: str) -> None:
    """Raises SetupError unless set-up is open and `code` is the current one (constant-time)."""
    if active_admin_exists(db):
        raise SetupError(SETUP_CLOSED)
    row = db.get(Setting, SETUP_CODE_KEY)
    expected = row.value if row is not None and isinstance(row.value, str) else ""
    # Compare digests of equal length whatever was typed; without a kept code nothing matches.
    if not hmac.compare_digest(_digest(code or ""), expected or "0" * 64) or not expected:
        raise SetupError(WRONG_CODE)


def create_first_admin(db: Session, code: str, email: str, name: str, password: str,
                       password_again: str) -> User:
    """The /setup form: re-checks that no admin exists and the code, then creates the admin and
    forgets the code, so the page refuses from then on."""
    check_setup(db, code)
    if password != password_again:
        raise accounts.AccountError("The two passwords differ.")
    user = accounts.create_user(db, None, email=email, name=name, role=Role.admin, password=password,
                                install_admin=True)
    db.delete(db.get(Setting, SETUP_CODE_KEY))
    return user
