"""User administration: create, deactivate, reset passwords, change roles, log out everywhere.
Every change is audited.

Plain Python on a database session; the caller (the admin page state) has checked the role already.
Each change is also checked against the actor's organisation here: an organisation's admin finds
only their organisation's users ("No such user." for the others) and cannot make install admins or
move users; `actor_id` None is the operator (CLI, /setup), who may do all.
"""

import re

from sqlalchemy import func, or_
from sqlmodel import Session, select

from proctor_app.auth.passwords import MIN_PASSWORD_LENGTH, hash_password
from proctor_app.auth.sessions import CurrentUser, revoke_user_sessions, signed_in_form
from proctor_app.models import DEFAULT_ORGANISATION_ID, AuditLog, Organisation, Role, User
from proctor_app.services.organisations import sees, visible_organisation_id
from proctor_app.services.revocation import (
    Revoked,
    clear_assignments,
    notify_after_commit,
    open_attempt_ids,
    revoke_upload_tokens,
)

# Deliberately loose: one @, no spaces, a dot in the domain. Delivery is what proves an address.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
ROLES = [role.value for role in Role]
USERS_PAGE_SIZE = 50


class AccountError(ValueError):
    """A change the rules do not allow; the message is shown to the admin as is."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def list_users(db: Session, organisation_id: int | None = None, search: str = "", page: int = 0,
               page_size: int = USERS_PAGE_SIZE) -> tuple[list[User], int]:
    """One page of the users of an organisation (None: of all) whose name or email contains
    `search`, and how many match in all; without API sessions' candidates (who cannot sign in and
    are managed through the API)."""
    conditions = [~User.email.endswith("@api-session.invalid")]
    if organisation_id is not None:
        conditions.append(User.organisation_id == organisation_id)
    if search.strip():
        needle = search.strip()
        conditions.append(or_(User.name.icontains(needle, autoescape=True),
                              User.email.icontains(needle, autoescape=True)))
    total = db.exec(select(func.count()).select_from(User).where(*conditions)).one()
    users = db.exec(select(User).where(*conditions).order_by(User.role, User.name, User.email)
                    .offset(page * page_size).limit(page_size))
    return list(users), total


def _actor(db: Session, actor_id: int | None) -> CurrentUser | None:
    """The acting admin as the scoping rules take them; None for the operator."""
    return None if actor_id is None else signed_in_form(_existing(db, actor_id))


def _acts_for_install(actor: CurrentUser | None) -> bool:
    return actor is None or visible_organisation_id(actor) is None


def _password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    return None


def _role_problem(role: str) -> str | None:
    return None if role in ROLES else f"Role must be one of: {', '.join(ROLES)}."


def _existing(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise AccountError("No such user.")
    return user


def _get_user(db: Session, actor_id: int | None, user_id: int) -> User:
    """The user, if the actor may manage them: another organisation's user is not there for them."""
    user, actor = _existing(db, user_id), _actor(db, actor_id)
    if actor is not None and not sees(actor, user.organisation_id):
        raise AccountError("No such user.")
    if user.is_install_admin and not _acts_for_install(actor):
        raise AccountError("Only an install admin may change an install admin.")
    return user


def _audit(db: Session, actor_id: int, action: str, user: User, **data) -> None:
    db.add(AuditLog(user_id=actor_id, action=action, target=f"user:{user.id}",
                    data={"email": user.email, **data}))


def create_user(db: Session, actor_id: int | None, email: str, name: str, role: str, password: str,
                organisation_id: int | None = None, install_admin: bool = False) -> User:
    """Check every field first and report all problems at once; nothing is saved on any problem.
    The user joins `organisation_id` (None: the actor's own); only the install's admins may name
    another organisation or create an install admin."""
    email, name = normalise_email(email), name.strip()
    actor = _actor(db, actor_id)
    own = actor.organisation_id if actor is not None else DEFAULT_ORGANISATION_ID
    organisation_id = own if organisation_id is None else organisation_id
    if not _acts_for_install(actor) and (organisation_id != own or install_admin):
        raise AccountError("Only an install admin may create install admins or users of another organisation.")
    if db.get(Organisation, organisation_id) is None:
        raise AccountError("No such organisation.")
    if install_admin and role != Role.admin:
        raise AccountError("An install admin has the admin role.")
    problems = []
    if not _EMAIL.match(email) or len(email) > MAX_EMAIL_LENGTH:
        problems.append("Enter a valid email address, like name@example.com.")
    elif db.exec(select(User.id).where(User.email == email)).first() is not None:
        problems.append(f"A user with the email {email} already exists.")
    if not name:
        problems.append("Enter the user's name.")
    elif len(name) > MAX_NAME_LENGTH:
        problems.append(f"The name must have at most {MAX_NAME_LENGTH} characters.")
    problems += [p for p in (_role_problem(role), _password_problem(password)) if p]
    if problems:
        raise AccountError(" ".join(problems))
    user = User(email=email, name=name, role=role, password_hash=hash_password(password),
                organisation_id=organisation_id, is_install_admin=install_admin)
    db.add(user)
    db.flush()
    _audit(db, actor_id, "user_created", user, role=role, organisation_id=organisation_id,
           install_admin=install_admin)
    return user


def set_active(db: Session, actor_id: int, user_id: int, active: bool) -> User:
    """Deactivating ends at once every open session of that user, their live views and, for a
    candidate, the uploads and live video of their attempts in progress (revocation.py)."""
    user = _get_user(db, actor_id, user_id)
    if user.id == actor_id and not active:
        raise AccountError("You cannot deactivate your own account.")
    if user.active == active:
        return user
    user.active = active
    db.add(user)
    if active:
        _audit(db, actor_id, "user_reactivated", user)
        return user
    sessions = revoke_user_sessions(db, user.id)
    tokens = revoke_upload_tokens(db, open_attempt_ids(db, user.id)) if user.role == Role.candidate \
        else frozenset()
    _audit(db, actor_id, "user_deactivated", user, sessions_revoked=sessions,
           upload_tokens_revoked=len(tokens))
    notify_after_commit(db, Revoked(viewer_id=user.id, token_hashes=tokens))
    return user


def logout_everywhere(db: Session, actor_id: int, user_id: int) -> int:
    """End every open session of the user, on every device, and their live views; returns how
    many sessions ended. The user (or an admin for them) signs in again to go on."""
    user = _get_user(db, actor_id, user_id)
    sessions = revoke_user_sessions(db, user.id)
    _audit(db, actor_id, "sessions_revoked", user, sessions_revoked=sessions)
    notify_after_commit(db, Revoked(viewer_id=user.id))
    return sessions


def reset_password(db: Session, actor_id: int, user_id: int, password: str) -> User:
    """A new password ends the user's open sessions."""
    user = _get_user(db, actor_id, user_id)
    problem = _password_problem(password)
    if problem:
        raise AccountError(problem)
    user.password_hash = hash_password(password)
    db.add(user)
    revoke_user_sessions(db, user.id)
    _audit(db, actor_id, "password_reset", user)
    notify_after_commit(db, Revoked(viewer_id=user.id))
    return user


def change_role(db: Session, actor_id: int, user_id: int, role: str) -> User:
    user = _get_user(db, actor_id, user_id)
    problem = _role_problem(role)
    if problem:
        raise AccountError(problem)
    if user.role == role:
        return user
    if user.id == actor_id:
        raise AccountError("You cannot change your own role; ask another admin.")
    old = user.role
    user.role = role
    db.add(user)
    # What the old role could do ends now: its sessions (pages built for it), its live views, a
    # candidate's uploads, and its assignments, which meant "takes" or "watches" for the old role.
    sessions = revoke_user_sessions(db, user.id)
    tokens = revoke_upload_tokens(db, open_attempt_ids(db, user.id)) if old == Role.candidate \
        else frozenset()
    cleared = clear_assignments(db, user.id)
    _audit(db, actor_id, "role_changed", user, old=old, new=role, sessions_revoked=sessions,
           upload_tokens_revoked=len(tokens), assignments_cleared=cleared)
    notify_after_commit(db, Revoked(viewer_id=user.id, token_hashes=tokens))
    return user


def move_user(db: Session, actor_id: int | None, user_id: int, organisation_id: int) -> User:
    """Move a user to another organisation (install admins only). Like a role change, what they
    could do in the old one ends: sessions, live views, uploads and assignments."""
    user = _get_user(db, actor_id, user_id)
    if not _acts_for_install(_actor(db, actor_id)):
        raise AccountError("Only an install admin may move users between organisations.")
    if db.get(Organisation, organisation_id) is None:
        raise AccountError("No such organisation.")
    if user.organisation_id == organisation_id:
        return user
    old, user.organisation_id = user.organisation_id, organisation_id
    db.add(user)
    sessions = revoke_user_sessions(db, user.id)
    tokens = revoke_upload_tokens(db, open_attempt_ids(db, user.id)) if user.role == Role.candidate \
        else frozenset()
    cleared = clear_assignments(db, user.id)
    _audit(db, actor_id, "user_moved", user, old=old, new=organisation_id, sessions_revoked=sessions,
           assignments_cleared=cleared)
    notify_after_commit(db, Revoked(viewer_id=user.id, token_hashes=tokens))
    return user
