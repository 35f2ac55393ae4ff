"""Accountable viewing: every live view (who, which attempt and stream, from when to when) goes to
the audit log when it starts and when it ends; the attempt page lists these beside the views and
downloads of its recordings.

The relay knows a view by its session id and owner ("user:<id>" or "key:<id>"); the start row is
written by the WHEP route, the end row by the relay's hook whenever the view ends (DELETE, the
player gone, access revoked, the attempt over).
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import or_
from sqlmodel import Session, select

from proctor_app.db import session_scope
from proctor_app.models import ApiKey, AuditLog, User

STARTED, ENDED = "live_view_started", "live_view_ended"
RECORDED_ACTIONS = ("media_viewed", "media_downloaded", "evidence_downloaded")
# Recorded media worth listing: the videos, not every poster, sprite and snapshot thumbnail.
RECORDED_ASSETS = ("/video", "/preview")
MAX_ROWS = 500


@dataclass(frozen=True)
class LiveViewer:
    """Who watches: a staff user, or an integrator's API key (by Bearer or by a signed link)."""

    user_id: int | None = None
    api_key_id: int | None = None
    via_link: bool = False

    @property
    def owner(self) -> str:
        """The relay's name for who may end the session."""
        return f"user:{self.user_id}" if self.user_id is not None else f"key:{self.api_key_id}"


def _viewer_of(owner: str) -> LiveViewer:
    kind, _, ident = owner.partition(":")
    return LiveViewer(user_id=int(ident)) if kind == "user" else LiveViewer(api_key_id=int(ident))


def _row(viewer: LiveViewer, action: str, attempt_id: int, stream: str, session_id: str,
         at: datetime | None = None) -> AuditLog:
    data = {"session": session_id, "stream": stream}
    if viewer.api_key_id is not None:
        data |= {"api_key": viewer.api_key_id, "via": "link" if viewer.via_link else "bearer"}
    row = AuditLog(user_id=viewer.user_id, action=action, target=f"attempt:{attempt_id}", data=data)
    if at is not None:
        row.at = at
    return row


def audit_view_started(db: Session, viewer: LiveViewer, attempt_id: int, stream: str, session_id: str) -> None:
    db.add(_row(viewer, STARTED, attempt_id, stream, session_id))


async def store_view_end(session_id: str, attempt_id: int, stream: str, owner: str, at: datetime) -> None:
    """The relay's hook: a view ended, for whatever reason."""
    def write() -> None:
        with session_scope() as db:
            db.add(_row(_viewer_of(owner), ENDED, attempt_id, stream, session_id, at))

    await asyncio.to_thread(write)


@dataclass
class ViewRow:
    who: str
    what: str  # "live camera", "recording camera video", ...
    started: str
    ended: str  # "" while a live view goes on, and for recorded media (one moment)


def _time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _who(row: AuditLog, user_name: str | None, keys: dict[int, ApiKey]) -> str:
    if user_name is not None:
        return user_name
    key = keys.get(row.data.get("api_key"))
    if key is None:
        return "unknown"
    return f"API key {key.label} ({key.prefix})" + (", signed link" if row.data.get("via") == "link" else "")


def attempt_views(db: Session, attempt_id: int) -> list[ViewRow]:
    """Who watched the attempt live and who opened its recordings, oldest first."""
    target = f"attempt:{attempt_id}"
    # Recorded media targets are "attempt:<id>/<stream>/<asset>"; the evidence bundle's, the attempt.
    recorded = [AuditLog.target.like(f"{target}/%{asset}") for asset in RECORDED_ASSETS]
    rows = db.exec(
        select(AuditLog, User.name).join(User, User.id == AuditLog.user_id, isouter=True)
        .where(or_(AuditLog.action.in_((STARTED, ENDED)) & (AuditLog.target == target),
                   AuditLog.action.in_(RECORDED_ACTIONS) & or_(AuditLog.target == target, *recorded)))
        .order_by(AuditLog.at, AuditLog.id).limit(MAX_ROWS)).all()
    key_ids = {row.data.get("api_key") for row, _ in rows} - {None}
    keys = {key.id: key for key in db.exec(select(ApiKey).where(ApiKey.id.in_(key_ids)))} if key_ids else {}
    views: list[ViewRow] = []
    live: dict[str, ViewRow] = {}
    for row, user_name in rows:
        if row.action == STARTED:
            live[row.data.get("session", "")] = view = ViewRow(
                _who(row, user_name, keys), f"live {row.data.get('stream', '')}", _time(row.at), "")
            views.append(view)
        elif row.action == ENDED:
            view = live.get(row.data.get("session", ""))
            if view is not None:
                view.ended = _time(row.at)
        else:
            what = row.target.removeprefix(target).strip("/").replace("/", " ") or "evidence bundle"
            verb = "recording" if row.action == "media_viewed" else "download of"
            views.append(ViewRow(_who(row, user_name, keys), f"{verb} {what}", _time(row.at), ""))
    return views
