"""The integration API for tests and benchmarks: organisations with keys, sessions made around
existing attempts, and the headers a caller sends."""

import secrets
from dataclasses import dataclass

from sqlmodel import Session

from proctor_app.models import ApiSession, Attempt, Exam, utcnow
from proctor_app.services import api_keys, api_sessions, organisations
from tests.support.factories import unique_tag


@dataclass(frozen=True)
class Caller:
    organisation_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_caller(db: Session, scopes: list[str] | None = None, slug: str | None = None, **key_fields) -> Caller:
    """A key (all scopes unless given) of the organisation `slug`, created when missing (default:
    a new organisation of the caller's own)."""
    organisation = organisations.ensure_organisation(db, slug or f"org-{unique_tag()}")
    key, raw = api_keys.create_key(db, organisation.id, "test key", scopes or list(api_keys.SCOPES))
    for name, value in key_fields.items():
        setattr(key, name, value)
    db.add(key)
    db.flush()
    return Caller(organisation.id, raw)


def session_body(external_id: str | None = None, **fields) -> dict:
    return {"external_id": f"ext-{unique_tag()}" if external_id is None else external_id, "candidate": {"name": "Cand Idate"},
            **fields}


def wrap_attempt(db: Session, organisation_id: int, attempt_id: int) -> ApiSession:
    """An API session around an attempt made by other factories (with media, say): its exam moves
    into the organisation."""
    attempt = db.get(Attempt, attempt_id)
    exam = db.get(Exam, attempt.exam_id)
    exam.organisation_id, exam.api_session = organisation_id, True
    public_id = "ses_" + secrets.token_hex(12)
    session = ApiSession(public_id=public_id, organisation_id=organisation_id, attempt_id=attempt_id,
                         external_id=f"ext-{unique_tag()}", candidate_name="Wrapped",
                         launch_token_hash=api_sessions.launch_token_hash(api_sessions.launch_token(public_id)),
                         launch_expires_at=utcnow())
    db.add_all([exam, session])
    db.flush()
    return session
