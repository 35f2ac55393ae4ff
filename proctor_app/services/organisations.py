"""Organisations (tenants): which ones a signed-in user may see (the one place every page, media
link and live route asks), finding or creating one by slug, and how an attempt is marked with its
organisation and, for API sessions, the caller's external id."""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, select

from proctor_app.auth.sessions import CurrentUser, signed_in_form
from proctor_app.db import session_scope
from proctor_app.models import ApiSession, Attempt, AuditLog, Exam, Organisation, User

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
    return visible_organisation_id(signed_in_form(db.get(User, user_id)))


# The /admin/organisations page: install admins only (checked here too, not only by the page).

MAX_ORIGINS = 50


@dataclass(frozen=True)
class OrganisationSummary:
    organisation: Organisation
    users: int
    exams: int  # the organisation's own exams, not the hidden ones of API sessions
    attempts: int


def _install_admin_only(db: Session, actor_id: int | None) -> None:
    if actor_id is not None and managed_organisation_id(db, actor_id) is not None:
        raise OrganisationError("Only the install's administrators manage organisations.")


def _counts(db: Session, column, *where) -> dict[int, int]:
    return dict(db.exec(select(column, func.count()).where(*where).group_by(column)).all())


def list_organisations(db: Session, actor_id: int | None) -> list[OrganisationSummary]:
    _install_admin_only(db, actor_id)
    users = _counts(db, User.organisation_id, ~User.email.endswith("@api-session.invalid"))
    exams = _counts(db, Exam.organisation_id, Exam.api_session.is_(False))
    attempts = dict(db.exec(select(Exam.organisation_id, func.count(Attempt.id))
                            .join(Attempt, Attempt.exam_id == Exam.id).group_by(Exam.organisation_id)).all())
    return [OrganisationSummary(org, users.get(org.id, 0), exams.get(org.id, 0), attempts.get(org.id, 0))
            for org in db.exec(select(Organisation).order_by(Organisation.slug))]


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise OrganisationError("An organisation's name is 1-200 characters.")
    return name


def create_organisation(db: Session, actor_id: int | None, slug: str, name: str) -> Organisation:
    _install_admin_only(db, actor_id)
    name = _name(name)
    if organisation_by_slug(db, slug.strip().lower()) is not None:
        raise OrganisationError(f"An organisation with the slug {slug.strip().lower()} exists already.")
    organisation = ensure_organisation(db, slug, name)
    db.add(AuditLog(user_id=actor_id, action="organisation_created", target=f"organisation:{organisation.id}",
                    data={"slug": organisation.slug, "name": name}))
    return organisation


def _organisation(db: Session, organisation_id: int) -> Organisation:
    organisation = db.get(Organisation, organisation_id)
    if organisation is None:
        raise OrganisationError("No such organisation.")
    return organisation


def rename_organisation(db: Session, actor_id: int | None, organisation_id: int, name: str) -> Organisation:
    _install_admin_only(db, actor_id)
    organisation, name = _organisation(db, organisation_id), _name(name)
    if organisation.name != name:
        db.add(AuditLog(user_id=actor_id, action="organisation_renamed", target=f"organisation:{organisation.id}",
                        data={"old": organisation.name, "new": name}))
        organisation.name = name
        db.add(organisation)
    return organisation


def parse_origins(text: str) -> list[str]:
    """Origins, one a line or separated by spaces or commas, each `scheme://host[:port]` (http or
    https, no path), lowercased and deduplicated in order; OrganisationError names the wrong ones."""
    origins, wrong = [], []
    for raw in re.split(r"[\s,]+", text.strip()):
        if not raw:
            continue
        parts = urlsplit(raw.lower())
        try:
            valid = (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
                     and not (parts.query or parts.fragment or parts.username or parts.password))
            port = f":{parts.port}" if valid and parts.port else ""
        except ValueError:  # a port that is no number
            valid = False
        if not valid:
            wrong.append(raw)
        elif (origin := f"{parts.scheme}://{parts.hostname}{port}") not in origins:
            origins.append(origin)
    if wrong:
        raise OrganisationError(f"Not an origin (scheme://host[:port], no path): {', '.join(wrong)}.")
    if len(origins) > MAX_ORIGINS:
        raise OrganisationError(f"At most {MAX_ORIGINS} allowed origins.")
    return origins


def set_allowed_origins(db: Session, actor_id: int | None, organisation_id: int, text: str) -> Organisation:
    """The origins whose pages may embed the recorder (/sdk/proctor.js, CORS) for the organisation."""
    _install_admin_only(db, actor_id)
    organisation, origins = _organisation(db, organisation_id), parse_origins(text)
    if list(organisation.allowed_origins) != origins:
        db.add(AuditLog(user_id=actor_id, action="organisation_origins_changed",
                        target=f"organisation:{organisation.id}",
                        data={"old": list(organisation.allowed_origins), "new": origins}))
        organisation.allowed_origins = origins
        db.add(organisation)
    return organisation
