"""Organisations (tenants): finding or creating one by slug, and how an attempt is marked with
its organisation and, for API sessions, the caller's external id."""

import re
from urllib.parse import urlsplit

from sqlmodel import Session, select

from proctor_app.cors import origin_of
from proctor_app.db import session_scope
from proctor_app.models import ApiSession, Attempt, Exam, Organisation, User

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class OrganisationError(ValueError):
    """An organisation that cannot be created; the message is shown to the user."""


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


def set_allowed_origins(db: Session, organisation: Organisation, origins: list[str]) -> list[str]:
    """The sites whose pages may embed the recorder (/sdk/proctor.js) for the organisation."""
    allowed = []
    for item in origins:
        origin = origin_of(item)
        if urlsplit(item.strip()).scheme not in ("http", "https") or origin != item.strip().rstrip("/").lower():
            raise OrganisationError(f"{item!r} is not an origin (scheme://host[:port], no path).")
        allowed.append(origin)
    organisation.allowed_origins = sorted(set(allowed))
    db.add(organisation)
    return organisation.allowed_origins


def all_allowed_origins() -> frozenset[str]:
    """Every organisation's SDK origins (for the CORS grant, proctor_app/cors.py)."""
    with session_scope() as db:
        return frozenset(origin for origins in db.exec(select(Organisation.allowed_origins)) for origin in origins or ())


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
    user = db.get(User, user_id)
    return None if user.is_install_admin else user.organisation_id
