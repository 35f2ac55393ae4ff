"""Proctor alerts on the test session's database, with the relay's statuses given by the test:
what raises an alert, for whom, once; acknowledging (audited). (In the browser, with a real
candidate's feed: tests/browser/test_proctor_alerts.py.)"""

from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.live.status import LiveSnapshot, LiveStatus
from proctor_app.models import AuditLog, Severity, User
from proctor_app.services import proctor_alerts
from proctor_app.services.attempts import record_event
from tests.support.factories import current_user
from tests.support.live_exams import make_live_exam


class Relay:
    """The relay's view of each attempt, as the test sets it."""

    def __init__(self):
        self.statuses: dict[int, LiveSnapshot] = {}

    def set(self, attempt_id: int, status: LiveStatus, at: float) -> None:
        self.statuses[attempt_id] = LiveSnapshot(status, at, ())

    def snapshot(self, attempt_id: int) -> LiveSnapshot:
        return self.statuses.get(attempt_id, LiveSnapshot(LiveStatus.offline, 0.0, ()))


def _check(email: str, relay: Relay, previous: dict, cursor: int) -> proctor_alerts.AlertCheck:
    with session_scope() as db:
        return proctor_alerts.check(db, current_user(email), previous, cursor, relay.snapshot)


def _candidate_name(email: str) -> str:
    with session_scope() as db:
        return db.exec(select(User.name).where(User.email == email)).one()


def test_a_dropped_feed_alerts_each_watching_proctor_once(demo_db):
    live, other = make_live_exam(), make_live_exam()
    proctor, second = live.proctors
    relay = Relay()
    relay.set(live.attempt_id, LiveStatus.live, 100.0)
    first = _check(proctor, relay, {}, 0)
    assert first.raised == [] and first.statuses[live.attempt_id] == LiveStatus.live
    assert other.attempt_id not in first.statuses  # not this proctor's exam

    relay.set(live.attempt_id, LiveStatus.reconnecting, 105.0)
    dropped = _check(proctor, relay, first.statuses, first.event_cursor)
    assert [(a.attempt_id, a.reason) for a in dropped.raised] == [(live.attempt_id, "reconnecting")]
    assert dropped.raised[0].text == f"{_candidate_name(live.candidate)}: live video dropped, reconnecting"
    assert dropped.open == dropped.raised
    # Seen again (the next check, another tab of the same proctor): nothing new.
    assert _check(proctor, relay, dropped.statuses, dropped.event_cursor).raised == []
    assert _check(proctor, relay, first.statuses, first.event_cursor).raised == []
    # The other proctor of the exam gets an alert of their own.
    assert len(_check(second, relay, first.statuses, first.event_cursor).raised) == 1

    relay.set(live.attempt_id, LiveStatus.offline, 125.0)
    offline = _check(proctor, relay, dropped.statuses, dropped.event_cursor)
    assert [a.reason for a in offline.raised] == ["offline"]
    assert [a.reason for a in offline.open] == ["offline", "reconnecting"]


def test_offline_seen_first_is_no_alert_but_reconnecting_is():
    assert not proctor_alerts.feed_dropped(None, LiveStatus.offline)  # perhaps never started
    assert proctor_alerts.feed_dropped(None, LiveStatus.reconnecting)
    assert proctor_alerts.feed_dropped(LiveStatus.live, LiveStatus.offline)
    assert proctor_alerts.feed_dropped(LiveStatus.reconnecting, LiveStatus.offline)
    assert not proctor_alerts.feed_dropped(LiveStatus.offline, LiveStatus.live)
    assert not proctor_alerts.feed_dropped(LiveStatus.reconnecting, LiveStatus.reconnecting)


def test_critical_events_alert_once_and_acknowledging_is_audited(demo_db):
    live = make_live_exam()
    proctor, second = live.proctors
    relay = Relay()
    with session_scope() as db:
        cursor = proctor_alerts.newest_event_id(db)
        record_event(db, live.attempt_id, "tab_hidden", Severity.warning)
        record_event(db, live.attempt_id, "camera_lost", Severity.critical, {"stream": "camera", "label": "Fake"})
    found = _check(proctor, relay, {}, cursor)
    alert, = found.raised
    assert (alert.reason, alert.text) == ("critical_event", f"{_candidate_name(live.candidate)}: Camera lost")
    assert found.event_cursor > cursor
    assert _check(proctor, relay, found.statuses, found.event_cursor).raised == []

    with session_scope() as db:
        # Not the other proctor's alert to acknowledge, nor an unknown one.
        assert not proctor_alerts.acknowledge(db, current_user(second), alert.id)
        assert not proctor_alerts.acknowledge(db, current_user(proctor), 10**9)
        assert proctor_alerts.acknowledge(db, current_user(proctor), alert.id)
    with session_scope() as db:
        assert not proctor_alerts.acknowledge(db, current_user(proctor), alert.id)  # already done
        assert proctor_alerts.open_alerts(db, current_user(proctor).id) == []
        audit, = db.exec(select(AuditLog).where(AuditLog.action == "proctor_alert_acknowledged",
                                                AuditLog.target == f"attempt:{live.attempt_id}")).all()
        assert audit.user_id == current_user(proctor).id
        assert audit.data["alert_id"] == alert.id and audit.data["reason"] == "critical_event"


def test_only_proctors_and_staff_who_may_watch_get_alerts(demo_db):
    live = make_live_exam()
    relay = Relay()
    relay.set(live.attempt_id, LiveStatus.reconnecting, 1.0)
    assert _check(live.candidate, relay, {}, 0).raised == []
    assert _check(live.proctors[0], relay, {}, 0).raised != []
