"""Organisations (tenants): which ones a signed-in user may see (the one place every page, media
link and live route asks), finding or creating one by slug, and how an attempt is marked with its
organisation and, for API sessions, the caller's external id."""

import re

from sqlalchemy import true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, select

from proctor_app.auth.sessions import CurrentUser, signed_in_form
from proctor_app.models import ApiSession, Attempt, Exam, Organisation, User

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class OrganisationError(ValueError):
    """An organisation that cannot be created; the message is shown to the user."""


def visible_organisation_id(user: CurrentUser) -> int | None:
    """The organisation a user may see: None (all of them) for the install's admins, else their own."""
    return None if user.is_install_admin else user.organisation_id


def sees(user: CurrentUser, organisation_id: int | None) -> bool:
    visible = visible_organisation_id(user)
    return visible is None or organisation_id == visible


def visible_to(user: CurrentUser, organisation_column) -> ColumnElement[bool]:
    """A query condition: the row's organisation (`organisation_column`) is one the user may see."""
    visible = visible_organisation_id(user)
    return true() if visible is None else organisation_column == visible


def attempt_organisation_id(db: Session, attempt: Attempt) -> int | None:
    return db.exec(select(Exam.organisation_id).where(Exam.id == attempt.exam_id)).first()


def sees_attempt(db: Session, user: CurrentUser, attempt: Attempt | None) -> bool:
    """Whether the attempt exists for this user at all: anything of another organisation is 'not found'."""
    return attempt is not None and sees(user, attempt_organisation_id(db, attempt))


def organisation_by_slug(db: Session, slug: str) -> Organisation | None:
    return db.exec(select(Organisation).where(Organisation.slug == slug)).first()


def ensure_organisation(db: Session, slug: str, name: str | None = None) -> Organisation:
    """The organisation with `slug`, created (named `name`, else the slug) when missing."""
    slug = slug.strip().lower()
    if not SLUG.match(slug):
        raise OrganisationError("An organisation's slug is 1-63 lowercase letters, digits and dashes.")
    organisation = organisation_by_slug(db, slug)
    if organisation is None:
        organisation = Organisation(slug=slug, name=(name or slug).strip()[:200])
        db.add(organisation)
        db.flush()
    return organisation


def origin_marks(db: Session, attempt_ids: list[int]) -> dict[int, str]:
    """Per attempt: its organisation's name, and for an API session ` · external id` after it."""
    if not attempt_ids:
        return {}
    rows = db.exec(select(Attempt.id, Organisation.name, ApiSession.external_id)
                   .join(Exam, Exam.id == Attempt.exam_id)
                   .join(Organisation, Organisation.id == Exam.organisation_id)
                   .join(ApiSession, ApiSession.attempt_id == Attempt.id, isouter=True)
                   .where(Attempt.id.in_(attempt_ids))).all()
    return {attempt_id: name if external_id is None else f"{name} · {external_id}"
            for attempt_id, name, external_id in rows}


def managed_organisation_id(db: Session, user_id: int) -> int | None:
    """Whose keys (and, later, webhooks) an admin manages: None for the install's admin (all
    organisations), else their own organisation's id."""
    return visible_organisation_id(signed_in_form(db.get(User, user_id)))
