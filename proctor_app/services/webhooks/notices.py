"""Events the schedule finds rather than a change: media about to be deleted by retention
(`media.expiring`, daily) and operator alerts as they start (`operator.alert`, per health sample)."""

from datetime import datetime, timedelta

from sqlmodel import Session, select

from proctor_app.models import WebhookEvent
from proctor_app.services.alerts import evaluate_alerts
from proctor_app.services.health import recent_samples
from proctor_app.services.retention import retention_plan
from proctor_app.services.settings import get_setting
from proctor_app.services.webhooks.outbox import record, subject_ids

ALERT_LOOKBACK = timedelta(hours=2)


def announce_expiring(db: Session, now: datetime) -> int:
    """`media.expiring` for each attempt a retention run N days from now would delete (N: the
    setting; 0 sends none), once per attempt; how many were written."""
    days = get_setting(db, "webhook_expiring_notice_days")
    if not days:
        return 0
    deleted_at = now + timedelta(days=days)
    told = set(db.exec(select(WebhookEvent.attempt_id).where(WebhookEvent.type == "media.expiring",
                                                             WebhookEvent.attempt_id.is_not(None))))
    written = 0
    for item in retention_plan(db, deleted_at).items:
        if item.attempt_id in told or item.resumed:
            continue
        organisation_id, ids = subject_ids(db, item.attempt_id)
        data = {**ids, "deleted_after": deleted_at.isoformat().replace("+00:00", "Z"), "reason": item.reason}
        written += record(db, "media.expiring", organisation_id, data, item.attempt_id, now) is not None
    return written


def announce_started_alerts(db: Session, now: datetime) -> int:
    """`operator.alert` to the install's endpoint for each alert that the newest sample started."""
    samples = recent_samples(db, now, ALERT_LOOKBACK)
    if not samples:
        return 0
    written = 0
    for alert in evaluate_alerts(samples, now):
        if alert.since == samples[-1].taken_at and alert.key != "no_samples":
            data = {"alert": alert.key, "message": alert.message,
                    "since": alert.since.isoformat().replace("+00:00", "Z")}
            written += record(db, "operator.alert", None, data, at=now) is not None
    return written
