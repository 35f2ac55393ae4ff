"""The candidate side of API sessions: the one-time launch link, and the short-lived session token
with which the embeddable recorder (/sdk/proctor.js) on another site's page records a session.

The launch link opens a login session of the session's hidden candidate user, whose only exam is
the session's hidden exam: that login reaches that one attempt and nothing else. The SDK token is
an HMAC of (session, expiry) under the install's secret, so nothing is stored for it; the
recorder's uploads then use an ordinary upload token of the attempt.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from proctor_app.auth.sessions import SESSION_LIFETIME
from proctor_app.auth.tokens import new_token, token_hash
from proctor_app.config import config
from proctor_app.cors import origin_of
from proctor_app.models import (
    ApiSession,
    Attempt,
    AuditLog,
    Exam,
    LoginSession,
    Organisation,
    UploadToken,
    User,
    utcnow,
)
from proctor_app.services import api_sessions
from proctor_app.services.settings import get_settings
from proctor_app.services.uploads import RECORDER_SETTINGS, UploadGrant

SDK_TOKEN_TTL = timedelta(minutes=10)


class LaunchRefused(LookupError):
    """A launch link that is unknown, already used or expired; the message is shown."""


class SdkRefused(PermissionError):
    """An SDK token that is invalid or expired, or a page origin the organisation did not allow."""


@dataclass(frozen=True)
class Launched:
    login_token: str
    exam_id: int


def launch(db: Session, token: str, now: datetime | None = None) -> Launched:
    """Use a launch link once: a login session of the hidden candidate, for that session only."""
    now = now or utcnow()
    session = db.exec(select(ApiSession).where(
        ApiSession.launch_token_hash == api_sessions.launch_token_hash(token)).with_for_update()).first()
    if session is None:
        raise LaunchRefused("This link is not valid.")
    if session.launch_used_at is not None:
        raise LaunchRefused("This link was already used. If this is your session, go back to the page "
                            "you opened it in; otherwise ask for a new link.")
    if session.launch_expires_at <= now:
        raise LaunchRefused("This link has expired. Ask for a new one.")
    attempt = db.get(Attempt, session.attempt_id)
    candidate = db.get(User, attempt.candidate_id)
    session.launch_used_at = now
    db.add(session)
    login_token = new_token()
    db.add(LoginSession(user_id=candidate.id, token_hash=token_hash(login_token), created_at=now,
                        last_seen_at=now, expires_at=now + SESSION_LIFETIME))
    db.add(AuditLog(action="api_session_launched", target=f"attempt:{attempt.id}",
                    data={"session": session.public_id}))
    return Launched(login_token=login_token, exam_id=attempt.exam_id)


def _mac(public_id: str, expires: int) -> str:
    mac = hmac.new(config.secret_key.encode(), f"sdk\n{public_id}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def sdk_token(session: ApiSession, now: datetime | None = None) -> tuple[str, datetime]:
    """(token, expires_at): what the integrator's server hands its exam page for the SDK."""
    expires_at = (now or utcnow()) + SDK_TOKEN_TTL
    expires = int(expires_at.timestamp())
    return f"{session.public_id}.{expires}.{_mac(session.public_id, expires)}", expires_at


def origin_allowed(organisation: Organisation, origin: str) -> bool:
    """Whether a page of `origin` may use the SDK for the organisation's sessions."""
    origin = origin_of(origin)
    return bool(origin) and origin in {origin_of(item) for item in organisation.allowed_origins}


def redeem(db: Session, token: str, origin: str, now: datetime | None = None) -> tuple[ApiSession, Attempt]:
    """The session and attempt an SDK token was made for, when it is valid and the page's origin
    is one its organisation allows."""
    public_id, _, rest = str(token).partition(".")
    expires, _, mac = rest.partition(".")
    if not expires.isdigit() or not hmac.compare_digest(mac, _mac(public_id, int(expires))):
        raise SdkRefused("The session token is not valid.")
    if int(expires) <= (now or utcnow()).timestamp():
        raise SdkRefused("The session token has expired: reload the page.")
    session = db.exec(select(ApiSession).where(ApiSession.public_id == public_id)).first()
    if session is None:
        raise SdkRefused("The session token is not valid.")
    if not origin_allowed(db.get(Organisation, session.organisation_id), origin):
        raise SdkRefused("This site is not allowed to record sessions of this organisation.")
    attempt = db.exec(select(Attempt).where(Attempt.id == session.attempt_id).with_for_update()).one()
    return session, attempt


def recording(db: Session, upload_token: str, origin: str, now: datetime | None = None) -> Attempt:
    """The attempt a recording SDK page holds the upload token of (its SDK token may have expired
    meanwhile), when the page's origin is allowed."""
    row = db.exec(select(UploadToken).where(UploadToken.token_hash == token_hash(str(upload_token)))).first()
    if row is None or row.expires_at <= (now or utcnow()):
        raise SdkRefused("The recording's token is not valid any more: reload the page.")
    attempt = db.exec(select(Attempt).where(Attempt.id == row.attempt_id).with_for_update()).one()
    exam = db.get(Exam, attempt.exam_id)
    if not exam.api_session or not origin_allowed(db.get(Organisation, exam.organisation_id), origin):
        raise SdkRefused("This site is not allowed to record sessions of this organisation.")
    return attempt


def recorder_props(db: Session, attempt: Attempt, grant: UploadGrant) -> dict:
    """What the recorder (recorder_session.js) is configured with, as its camelCase props."""
    settings = get_settings(db)
    props = {"attemptId": grant.attempt_id, "uploadToken": grant.token, "streams": grant.streams,
             "nextSegment": grant.next_segment, "nextSnapshotSeq": grant.next_snapshot_seq,
             "snapshotIntervalS": grant.snapshot_interval_s, "clockOffsetMs": attempt.clock_offset_ms or 0}
    for key in RECORDER_SETTINGS:
        head, *tail = key.split("_")
        props[head + "".join(part.capitalize() for part in tail)] = settings[key]
    return props
