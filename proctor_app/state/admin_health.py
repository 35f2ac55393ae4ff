"""The Health page (admins): charts of the health samples over a chosen span, and the alerts
standing now (services/alerts.py)."""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.models import HealthSample, utcnow
from proctor_app.services.alerts import evaluate_alerts
from proctor_app.services.health import recent_samples
from proctor_app.services.review import iso_time
from proctor_app.state.auth import AuthState, requires

SPANS = {"6 hours": timedelta(hours=6), "24 hours": timedelta(hours=24), "7 days": timedelta(days=7),
         "30 days": timedelta(days=30)}
DEFAULT_SPAN = "24 hours"
# A chart draws at most this many points; longer spans show every n-th sample.
MAX_POINTS = 240
# Samples read to say since when an alert stands.
ALERT_LOOKBACK = timedelta(hours=24)


@dataclass
class AlertRow:
    key: str
    message: str
    since: str


def _point(sample: HealthSample, long_span: bool) -> dict[str, Any]:
    ended = sample.jobs_done + sample.jobs_failed
    tries = sample.webhook_tries_ok + sample.webhook_tries_failed
    return {
        "time": sample.taken_at.strftime("%m-%d %H:%M" if long_span else "%H:%M"),
        "success_pct": round(100 * sample.jobs_done / ended, 1) if ended else None,
        "processing_s": round(sample.processing_p95_s, 1) if sample.processing_p95_s is not None else None,
        "queue_wait_min": round(sample.oldest_wait_s / 60, 1),
        "storage_gb": round(sample.storage_bytes / 1e9, 3),
        "disk_free_pct": (round(100 * sample.disk_free_bytes / sample.disk_total_bytes, 1)
                          if sample.disk_total_bytes else None),
        "webhook_pct": round(100 * sample.webhook_tries_ok / tries, 1) if tries else None,
    }


def _figures(span: timedelta, now: datetime) -> tuple[list[dict[str, Any]], list[AlertRow], str]:
    with session_scope() as db:
        samples = recent_samples(db, now, max(span, ALERT_LOOKBACK))
    shown = [s for s in samples if s.taken_at > now - span]
    step = max(1, -(-len(shown) // MAX_POINTS))
    points = [_point(s, span > timedelta(days=1)) for s in shown[::step]]
    alerts = [AlertRow(a.key, a.message, iso_time(a.since)) for a in evaluate_alerts(samples, now)]
    latest = iso_time(samples[-1].taken_at) if samples else ""
    return points, alerts, latest


class AdminHealthState(AuthState):
    span: str = DEFAULT_SPAN
    points: list[dict[str, Any]] = []
    alerts: list[AlertRow] = []
    latest_sample: str = ""

    async def _refresh(self) -> None:
        self.points, self.alerts, self.latest_sample = await asyncio.to_thread(
            _figures, SPANS[self.span], utcnow())

    @requires(ADMIN, install_admin=True)
    async def on_load(self):
        await self._refresh()

    @requires(ADMIN, install_admin=True)
    async def refresh(self):
        await self._refresh()

    @requires(ADMIN, install_admin=True)
    async def choose_span(self, span: str):
        if span in SPANS:
            self.span = span
            await self._refresh()
