"""Sending the outbox: a loop of its own beside the job worker (a slow receiver never holds up a
finalize job), at least once, signed per Standard Webhooks with the `standardwebhooks` library.

A due delivery is leased (compare-and-set), so processes share the work and one that died leaves
it to be taken again when the lease runs out. Each try: 10 s timeout; 2xx delivered; 410 disables
the endpoint; anything else retries with exponential backoff and jitter for about a day, after
which the endpoint is paused (its later events kept until it is enabled again). The webhook-id is
the event's, the same on every try. Endpoints are served side by side, each one's deliveries in
the order of their events (a retried one comes later: receivers order by the envelope's timestamp)."""

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, update
from sqlmodel import Session, select
from standardwebhooks import Webhook

from proctor_app.clock import Clock, system_clock
from proctor_app.db import SessionFactory, session_scope
from proctor_app.metrics import webhook_deliveries, webhook_seconds
from proctor_app.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from proctor_app.services.webhooks.endpoints import refused_address, signing_secrets
from proctor_app.services.webhooks.outbox import PAUSED

log = logging.getLogger("proctor_app.webhooks")

TIMEOUT_S = 10.0
LEASE = timedelta(seconds=60)
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 6 * 3600.0
# 5 s, 20 s, 80 s ... capped at 6 h: the eleventh try is about a day after the first.
MAX_TRIES = 11
EXCERPT_CHARS = 300
USER_AGENT = "proctor-webhooks/1"


def retry_delay_s(tries: int) -> float:
    """After the `tries`-th failed try: exponential, with ±20 % jitter so retries do not bunch."""
    return min(MAX_RETRY_S, FIRST_RETRY_S * 4 ** (tries - 1)) * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Due:
    delivery_id: int
    endpoint_id: int
    tries: int  # including this one
    webhook_id: str
    body: str
    url: str
    secrets: list[str]


@dataclass(frozen=True)
class Tried:
    due: Due
    at: datetime
    status_code: int | None  # None: no answer (refused address, timeout, connection error)
    latency_ms: float
    excerpt: str
    refused: bool


def signed_headers(webhook_id: str, body: str, secrets: list[str], at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret during a rotation."""
    signatures = " ".join(Webhook(secret).sign(webhook_id, at, body) for secret in secrets)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json", "user-agent": USER_AGENT}


def claim_due(db: Session, now: datetime, limit: int) -> list[Due]:
    """Lease up to `limit` due deliveries of enabled endpoints (committed)."""
    rows = db.exec(select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
                   .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                   .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                   .where(WebhookDelivery.status == "pending", WebhookDelivery.next_try_at <= now,
                          or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
                          WebhookEndpoint.enabled)
                   .order_by(WebhookDelivery.next_try_at, WebhookDelivery.id).limit(limit)).all()
    taken = []
    for delivery, event, endpoint in rows:
        tries = delivery.tries + 1  # (read first: the update below refreshes the object)
        # Only if no other process leased it since it was read (its lease would not be past).
        leased = db.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == delivery.id, WebhookDelivery.status == "pending",
            or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now)
        ).values(leased_until=now + LEASE, tries=WebhookDelivery.tries + 1)).rowcount == 1
        if leased:
            taken.append(Due(delivery.id, endpoint.id, tries, event.public_id,
                             json.dumps(event.envelope, separators=(",", ":")), endpoint.url,
                             signing_secrets(endpoint, now)))
    db.commit()
    return taken


def save_result(db: Session, tried: "Tried") -> str:
    """Write the try and what it means for the delivery and the endpoint (the caller commits);
    returns the outcome."""
    due, now, status_code = tried.due, tried.at, tried.status_code
    delivery = db.get(WebhookDelivery, due.delivery_id)
    endpoint = db.get(WebhookEndpoint, due.endpoint_id)
    if delivery is None or endpoint is None:  # the endpoint was deleted meanwhile
        return "dropped"
    ok = status_code is not None and 200 <= status_code < 300
    db.add(WebhookAttempt(delivery_id=due.delivery_id, at=now, number=due.tries, status_code=status_code,
                          latency_ms=round(tried.latency_ms, 1), excerpt=tried.excerpt[:EXCERPT_CHARS], ok=ok))
    delivery.last_status_code, delivery.leased_until = status_code, None
    if ok:
        delivery.status, delivery.delivered_at, outcome = "delivered", now, "delivered"
    elif status_code == 410:
        delivery.status, outcome = "failed", "gone"
        endpoint.enabled, endpoint.disabled_reason = False, "410 Gone: the receiver asked to stop"
    elif due.tries >= MAX_TRIES:
        delivery.status, outcome = "failed", "failed"
        endpoint.enabled = False
        endpoint.disabled_reason = f"{PAUSED} after {MAX_TRIES} failed tries of one event"
    else:
        delivery.next_try_at, outcome = now + timedelta(seconds=retry_delay_s(due.tries)), "retry"
    db.add_all([delivery, endpoint])
    return outcome


def redeliver(db: Session, delivery_id: int, now: datetime) -> bool:
    """Send a delivery again now (same webhook-id); False when it is not one of the log's."""
    delivery = db.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return False
    delivery.status, delivery.next_try_at, delivery.leased_until = "pending", now, None
    db.add(delivery)
    return True


@dataclass
class DeliveryLoop:
    sessions: SessionFactory = session_scope
    clock: Clock = system_clock
    # Deliveries leased per round (each endpoint's sent in order, endpoints side by side).
    batch: int = 100
    poll_s: float = 0.5
    _client: httpx.AsyncClient | None = field(default=None, init=False)

    def _claim(self) -> list[Due]:
        with self.sessions() as db:
            return claim_due(db, self.clock.now(), self.batch)

    def _save_all(self, tries: list[Tried]) -> list[str]:
        """The results of a round in one transaction (a crash before it: the leases run out and
        those deliveries are sent again, as at-least-once allows)."""
        with self.sessions() as db:
            outcomes = [save_result(db, tried) for tried in tries]
            db.commit()
        for tried, outcome in zip(tries, outcomes):
            webhook_deliveries.labels("refused" if tried.refused and outcome == "retry" else outcome).inc()
            if outcome != "delivered":
                log.info("webhook %s to %s: %s (try %s, %s)", tried.due.webhook_id, tried.due.url, outcome,
                         tried.due.tries, tried.status_code or tried.excerpt)
        return outcomes

    async def _try(self, due: Due) -> Tried:
        refused = await asyncio.to_thread(refused_address, due.url)
        if refused:
            return Tried(due, self.clock.now(), None, 0.0, f"not sent: {refused}", True)
        headers = signed_headers(due.webhook_id, due.body, due.secrets, self.clock.now())
        status_code, started = None, time.monotonic()
        try:
            response = await self._client.post(due.url, content=due.body, headers=headers)
            status_code, excerpt = response.status_code, response.text[:EXCERPT_CHARS]
        except httpx.HTTPError as exc:
            excerpt = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        webhook_seconds.observe(seconds)
        return Tried(due, self.clock.now(), status_code, seconds * 1000, excerpt, False)

    async def send(self, due: Due) -> str:
        """One delivery now; its outcome (delivered, retry, failed, gone, dropped)."""
        return (await asyncio.to_thread(self._save_all, [await self._try(due)]))[0]

    async def run_once(self) -> int:
        """Send what is due now; how many were sent."""
        due = await asyncio.to_thread(self._claim)
        by_endpoint: dict[int, list[Due]] = {}
        for delivery in due:
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)

        async def in_order(deliveries: list[Due]) -> list[Tried]:
            return [await self._try(delivery) for delivery in deliveries]

        groups = await asyncio.gather(*(in_order(group) for group in by_endpoint.values()))
        if due:
            await asyncio.to_thread(self._save_all, [tried for group in groups for tried in group])
        return len(due)

    async def run(self) -> None:
        """Until cancelled. Redirects are not followed: a receiver answers where it was registered."""
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as self._client:
            while True:
                try:
                    if await self.run_once():
                        continue
                except Exception:  # a database hiccup must not end the loop
                    log.exception("webhook delivery loop")
                await asyncio.sleep(self.poll_s)
