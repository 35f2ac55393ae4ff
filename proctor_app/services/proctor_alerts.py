"""Proctor alerts: raised for the proctor watching the grid when a candidate's live video goes
Reconnecting or Offline, or a critical event arrives, for attempts the proctor may watch; open
until that proctor acknowledges them (audited).

The grid's state calls `check` every couple of seconds and on every live status change: it hands
in the statuses it saw last and the newest event id it has looked at, and gets back the alerts
raised now (to toast) and every open one (to list). Raising is idempotent per proctor and cause.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from proctor_app.auth.roles import LIVE_VIEW
from proctor_app.auth.sessions import CurrentUser
from proctor_app.media.live.status import LiveSnapshot, LiveStatus
from proctor_app.models import AlertReason, AuditLog, ProctorAlert, ProctoringEvent, Severity, utcnow
from proctor_app.services import live, proctoring_texts

MAX_OPEN_LISTED = 100
FEED_REASONS = {LiveStatus.reconnecting: AlertReason.reconnecting, LiveStatus.offline: AlertReason.offline}


@dataclass(frozen=True)
class AlertView:
    id: int
    attempt_id: int
    reason: str
    text: str
    raised_at: str  # HH:MM:SS UTC


@dataclass(frozen=True)
class AlertCheck:
    statuses: dict[int, str]  # every watched attempt's live status now
    event_cursor: int  # the newest event id looked at
    raised: list[AlertView]
    open: list[AlertView]


def newest_event_id(db: Session) -> int:
    """Where a grid opened now starts looking for critical events: events before it were there
    already (the tiles show them)."""
    return db.exec(select(func.max(ProctoringEvent.id))).one() or 0


def feed_dropped(previous: str | None, now: str) -> bool:
    """A status change worth an alert: to Reconnecting or Offline from another status. Seen for
    the first time, only Reconnecting (it follows Live); Offline may be a feed never started."""
    if now not in FEED_REASONS or now == previous:
        return False
    return previous is not None or now == LiveStatus.reconnecting


def _view(alert: ProctorAlert) -> AlertView:
    return AlertView(alert.id, alert.attempt_id, alert.reason, alert.text, alert.raised_at.strftime("%H:%M:%S"))


def _raise(db: Session, user_id: int, attempt_id: int, reason: str, source: str, text: str) -> ProctorAlert | None:
    """The alert, or None when this proctor had it already (another tab, or a reload, raised it)."""
    alert = ProctorAlert(user_id=user_id, attempt_id=attempt_id, reason=reason, source=source, text=text[:300])
    try:
        with db.begin_nested():
            db.add(alert)
    except IntegrityError:
        return None
    return alert


def check(db: Session, user: CurrentUser, previous: dict[int, str], event_cursor: int,
          snapshot: Callable[[int], LiveSnapshot]) -> AlertCheck:
    """Raise the alerts due since the last check: `previous` statuses and `event_cursor` are what
    the caller saw then; `snapshot` is the relay's view of an attempt now."""
    if user.role not in LIVE_VIEW:
        return AlertCheck({}, event_cursor, [], [])
    watched = {attempt_id: name for attempt_id, name, _ in live.attempts_in_progress(db, user, live.LiveFilter())}
    raised: list[ProctorAlert] = []
    statuses = {}
    for attempt_id, candidate in watched.items():
        now = snapshot(attempt_id)
        statuses[attempt_id] = now.status
        if feed_dropped(previous.get(attempt_id), now.status):
            raised.append(_raise(db, user.id, attempt_id, FEED_REASONS[now.status],
                                 f"status:{attempt_id}:{now.status}:{now.changed_at:.3f}",
                                 proctoring_texts.feed_alert(candidate, now.status)))
    events = list(db.exec(select(ProctoringEvent).where(
        ProctoringEvent.id > event_cursor, ProctoringEvent.attempt_id.in_(list(watched)),
        ProctoringEvent.severity == Severity.critical).order_by(ProctoringEvent.id))) if watched else []
    for event in events:
        raised.append(_raise(db, user.id, event.attempt_id, AlertReason.critical_event, f"event:{event.id}",
                             proctoring_texts.event_alert(watched[event.attempt_id], event.kind, event.data)))
    db.flush()
    cursor = max([event_cursor, *(e.id for e in events)])
    return AlertCheck(statuses, cursor, [_view(a) for a in raised if a is not None], open_alerts(db, user.id))


def open_alerts(db: Session, user_id: int) -> list[AlertView]:
    """The proctor's alerts not acknowledged yet, newest first."""
    return [_view(a) for a in db.exec(select(ProctorAlert).where(
        ProctorAlert.user_id == user_id, ProctorAlert.acknowledged_at.is_(None))
        .order_by(ProctorAlert.raised_at.desc(), ProctorAlert.id.desc()).limit(MAX_OPEN_LISTED))]


def acknowledge(db: Session, user: CurrentUser, alert_id: int) -> bool:
    """The proctor saw to the alert: closed and audited. False for an alert that is not this
    proctor's or is closed already."""
    alert = db.get(ProctorAlert, alert_id)
    if alert is None or alert.user_id != user.id or alert.acknowledged_at is not None:
        return False
    alert.acknowledged_at = utcnow()
    db.add(alert)
    db.add(AuditLog(user_id=user.id, action="proctor_alert_acknowledged", target=f"attempt:{alert.attempt_id}",
                    data={"alert_id": alert.id, "reason": alert.reason, "text": alert.text,
                          "raised_at": alert.raised_at.isoformat()}))
    return True
