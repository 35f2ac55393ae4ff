"""API keys of organisations: created, listed by prefix, revoked, rotated, and checked on every
API request.

A key is `pk_<prefix>_<secret>` with 32 random bytes of secret. The table keeps only an HMAC-SHA256
of it under the install's secret key: for high-entropy random keys a fast keyed hash is as strong
as a password hash (there is nothing to guess), and it costs microseconds per request.

A key found valid is remembered in the process (by its hash) for KEY_CACHE_TTL, so most requests
need no database round trip for it. Revoking or rotating a key in this process forgets it at once;
other processes (several workers with Redis, the CLI) stop accepting a revoked key within
KEY_CACHE_TTL. An expiring key is never remembered past its expiry.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, event, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, or_, select

from proctor_app.config import config
from proctor_app.db import connection_scope
from proctor_app.models import ApiKey, Attempt, AuditLog, Exam, Organisation, utcnow
from proctor_app.services.revocation import Revoked, notify_after_commit

SCOPES = ("sessions:write", "sessions:read", "recordings:read", "recordings:delete", "webhooks:manage")
# A rotated key keeps working this long beside its successor, so callers can deploy the new one.
ROTATION_OVERLAP = timedelta(hours=24)
# last_used_at is written at most this often per key: not a write on every request.
LAST_USE_RESOLUTION = timedelta(minutes=1)
# The longest a revocation made in another process takes to reach this one.
KEY_CACHE_TTL = timedelta(seconds=10)
MAX_LABEL = 200
KEY_PREFIX = "pk_"
PREFIX_HEX = 12


class ApiKeyError(ValueError):
    """A key change that is not allowed; the message is shown to the user."""


@dataclass(frozen=True)
class KeyPrincipal:
    """Who an API request acts as: a valid key of one organisation, with its scopes."""

    key_id: int
    organisation_id: int
    scopes: frozenset[str]


@dataclass(frozen=True)
class _CheckedKey:
    principal: KeyPrincipal
    valid_until: datetime  # checked at + KEY_CACHE_TTL, or the key's expiry when sooner
    last_used_at: datetime


# Valid keys only, by hash (never the secret): as many entries at most as there are keys.
_checked_keys: dict[str, _CheckedKey] = {}


def _hash(raw: str) -> str:
    return hmac.new(config.secret_key.encode(), raw.encode(), hashlib.sha256).hexdigest()


def _forget(key_id: int) -> None:
    for key_hash, checked in list(_checked_keys.items()):
        if checked.principal.key_id == key_id:
            _checked_keys.pop(key_hash, None)


def _forget_now_and_on_commit(db: Session, key_id: int) -> None:
    """Forgotten at once, and again when the change commits: a request checking the key in between
    would remember it as it was until then."""
    _forget(key_id)
    event.listen(db, "after_commit", lambda _session: _forget(key_id), once=True)


def forget_checked_keys() -> None:
    """Every key is checked against the database again on its next use."""
    _checked_keys.clear()


def _new_secret() -> tuple[str, str]:
    """(prefix, full key)."""
    prefix = KEY_PREFIX + secrets.token_hex(PREFIX_HEX // 2)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _checked(label: str, scopes: list[str]) -> tuple[str, list[str]]:
    label = label.strip()
    if not label or len(label) > MAX_LABEL:
        raise ApiKeyError(f"A key needs a label of 1-{MAX_LABEL} characters.")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiKeyError(f"Unknown scope(s): {', '.join(unknown)}. Scopes are: {', '.join(SCOPES)}.")
    return label, [scope for scope in SCOPES if scope in scopes]


def create_key(db: Session, organisation_id: int, label: str, scopes: list[str],
               expires_at: datetime | None = None, created_by: int | None = None) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown once and never stored."""
    label, scopes = _checked(label, scopes or list(SCOPES))
    prefix, raw = _new_secret()
    key = ApiKey(organisation_id=organisation_id, label=label, prefix=prefix, key_hash=_hash(raw),
                 scopes=scopes, expires_at=expires_at, created_by=created_by)
    db.add(key)
    db.flush()
    db.add(AuditLog(user_id=created_by, action="api_key_created", target=f"api_key:{key.id}",
                    data={"prefix": prefix, "organisation_id": organisation_id, "scopes": scopes}))
    return key, raw


def keys_of(db: Session, organisation_id: int | None) -> list[tuple[ApiKey, Organisation]]:
    """The keys of an organisation (None: of all), newest first."""
    query = select(ApiKey, Organisation).join(Organisation, Organisation.id == ApiKey.organisation_id)
    if organisation_id is not None:
        query = query.where(ApiKey.organisation_id == organisation_id)
    return list(db.exec(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all())


def _key_of(db: Session, key_id: int, organisation_id: int | None) -> ApiKey:
    key = db.get(ApiKey, key_id)
    if key is None or (organisation_id is not None and key.organisation_id != organisation_id):
        raise ApiKeyError("No such key.")
    return key


def revoke_key(db: Session, key_id: int, organisation_id: int | None, by: int | None = None,
               now: datetime | None = None) -> ApiKey:
    """Revoke a key of `organisation_id` (None: of any); revoking it again changes nothing."""
    key = _key_of(db, key_id, organisation_id)
    _forget_now_and_on_commit(db, key.id)
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        db.add(key)
        db.add(AuditLog(user_id=by, action="api_key_revoked", target=f"api_key:{key.id}",
                        data={"prefix": key.prefix}))
        notify_after_commit(db, Revoked(api_key_id=key.id))  # its live views end
    return key


def rotate_key(db: Session, key_id: int, organisation_id: int | None, by: int | None = None,
               now: datetime | None = None) -> tuple[ApiKey, str]:
    """A successor with the same label, scopes and expiry; the old key ends after ROTATION_OVERLAP."""
    now = now or utcnow()
    old = _key_of(db, key_id, organisation_id)
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise ApiKeyError("A revoked or expired key cannot be rotated; create a new one.")
    new, raw = create_key(db, old.organisation_id, old.label, list(old.scopes), old.expires_at, by)
    _forget_now_and_on_commit(db, old.id)
    old.replaced_by = new.id
    old.expires_at = min(old.expires_at or now + ROTATION_OVERLAP, now + ROTATION_OVERLAP)
    db.add(old)
    db.add(AuditLog(user_id=by, action="api_key_rotated", target=f"api_key:{old.id}",
                    data={"prefix": old.prefix, "successor": new.prefix}))
    return new, raw


def checked_principal(raw: str, now: datetime | None = None) -> KeyPrincipal | None:
    """The principal of a key found valid within KEY_CACHE_TTL whose last use needs no write yet;
    None means: ask authenticate. No database: it runs on the event loop."""
    now = now or utcnow()
    checked = _checked_keys.get(_hash(raw))
    if checked is None or checked.valid_until <= now or checked.last_used_at < now - LAST_USE_RESOLUTION:
        return None
    return checked.principal


# Built once: the statement of every API request's key check.
_KEY_BY_PREFIX = select(ApiKey.id, ApiKey.organisation_id, ApiKey.key_hash, ApiKey.scopes, ApiKey.revoked_at,
                        ApiKey.expires_at, ApiKey.last_used_at).where(ApiKey.prefix == bindparam("prefix"))


def authenticate(db: Session | Connection, raw: str, now: datetime | None = None) -> KeyPrincipal | None:
    """The key's principal, or None when the key is unknown, wrong, revoked or expired; a valid key
    is remembered for checked_principal. Plain columns, no ORM (a Connection from
    connection_scope will do)."""
    now = now or utcnow()
    prefix = raw[:len(KEY_PREFIX) + PREFIX_HEX]
    if not prefix.startswith(KEY_PREFIX) or len(raw) > 100:
        return None
    key_hash = _hash(raw)
    key = db.execute(_KEY_BY_PREFIX, {"prefix": prefix}).first()
    if key is None or not hmac.compare_digest(key.key_hash, key_hash):
        return None
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        _checked_keys.pop(key_hash, None)
        return None
    last_used_at = key.last_used_at
    if last_used_at is None or last_used_at < now - LAST_USE_RESOLUTION:
        # Conditional, so concurrent requests write it once a minute at most, without a lock.
        db.execute(update(ApiKey).where(ApiKey.id == key.id, or_(
            ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USE_RESOLUTION))
            .values(last_used_at=now))
        last_used_at = now  # by this request or, when the condition failed, a concurrent one
    principal = KeyPrincipal(key.id, key.organisation_id, frozenset(key.scopes))
    valid_until = min(now + KEY_CACHE_TTL, key.expires_at or now + KEY_CACHE_TTL)
    _checked_keys[key_hash] = _CheckedKey(principal, valid_until, last_used_at)
    return principal


def principal_for_key(raw: str) -> KeyPrincipal | None:
    """The principal of a presented API key, None when it is not a valid one (blocking: a thread)."""
    with connection_scope() as conn:
        return authenticate(conn, raw)


def key_reads_attempt(db: Session, key_id: int, attempt_id: int, now: datetime | None = None,
                      scope: str = "recordings:read") -> bool:
    """Whether the key is valid now, has `scope`, and the attempt is its organisation's."""
    now = now or utcnow()
    key = db.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return False
    organisation_id = db.exec(select(Exam.organisation_id).join(Attempt, Attempt.exam_id == Exam.id)
                              .where(Attempt.id == attempt_id)).first()
    return scope in key.scopes and organisation_id == key.organisation_id
