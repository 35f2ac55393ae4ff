"""Login, logout and session lookup. Plain Python: used by Reflex states and HTTP routes alike."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from proctor_app.auth.passwords import MAX_PASSWORD_LENGTH, verify_password_or_dummy
from proctor_app.auth.tokens import new_token, token_hash
from proctor_app.db import session_scope
from proctor_app.i18n import N_
from proctor_app.models import DEFAULT_ORGANISATION_ID, LoginSession, Role, User, utcnow

SESSION_LIFETIME = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(hours=2)
SESSION_COOKIE = "proctor_session"
WRONG_CREDENTIALS = N_("Wrong email or password.")
ACCOUNT_DEACTIVATED = N_("This account is deactivated.")


class LoginError(Exception):
    """Wrong email or password: one message for an unknown email and a wrong password alike."""


class AccountDeactivated(LoginError):
    """The right password of a deactivated account (only who knows the password learns this)."""


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    name: str
    role: str
    organisation_id: int = DEFAULT_ORGANISATION_ID
    # Admin of the whole install: only meaningful while the role is admin.
    is_install_admin: bool = False


def signed_in_form(user: User) -> CurrentUser:
    return CurrentUser(id=user.id, email=user.email, name=user.name, role=user.role,
                       organisation_id=user.organisation_id,
                       is_install_admin=user.role == Role.admin and user.is_install_admin)


def login(email: str, password: str, now: datetime | None = None) -> tuple[str, CurrentUser]:
    """Check the password and open a new session; returns (token, user) or raises LoginError.

    Blocking (argon2): run it off the event loop. An unknown email costs the same hash check as
    a known one, and a wrong password answers the same whether or not the account is active.
    """
    now = now or utcnow()
    if len(password) > MAX_PASSWORD_LENGTH:
        raise LoginError(WRONG_CREDENTIALS)
    with session_scope() as db:
        user = db.exec(select(User).where(User.email == email.strip().lower())).first()
        if not verify_password_or_dummy(password, user.password_hash if user else None):
            raise LoginError(WRONG_CREDENTIALS)
        if not user.active:
            raise AccountDeactivated(ACCOUNT_DEACTIVATED)
        token = new_token()
        db.add(LoginSession(user_id=user.id, token_hash=token_hash(token), created_at=now,
                            last_seen_at=now, expires_at=now + SESSION_LIFETIME))
        return token, signed_in_form(user)


def logout(token: str) -> None:
    if not token:
        return
    with session_scope() as db:
        row = db.exec(select(LoginSession).where(LoginSession.token_hash == token_hash(token))).first()
        if row and row.revoked_at is None:
            row.revoked_at = utcnow()
            db.add(row)


def user_for_token(token: str | None, db: Session | None = None, now: datetime | None = None) -> CurrentUser | None:
    """The active user behind a session token, or None when missing, expired, idle or revoked."""
    if not token:
        return None
    if db is None:
        with session_scope() as own:
            return user_for_token(token, own, now)
    now = now or utcnow()
    row = db.exec(select(LoginSession).where(LoginSession.token_hash == token_hash(token))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at > IDLE_TIMEOUT:
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    # Only touch the row once a minute, so page loads do not each write.
    if now - row.last_seen_at > timedelta(minutes=1):
        row.last_seen_at = now
        db.add(row)
        db.commit()
    return signed_in_form(user)


def revoke_user_sessions(db: Session, user_id: int) -> int:
    """Ends every open session of the user (deactivation, password reset, role change, logging
    out everywhere); returns how many."""
    now = utcnow()
    rows = list(db.exec(select(LoginSession).where(LoginSession.user_id == user_id,
                                                   LoginSession.revoked_at.is_(None))))
    for row in rows:
        row.revoked_at = now
        db.add(row)
    return len(rows)
