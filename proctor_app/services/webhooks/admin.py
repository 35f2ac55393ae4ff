"""What the admin page shows and does: endpoints and the delivery log of the organisations an
admin manages (None: the install admin, every organisation), redelivery, and the install's own
endpoint for operator alerts."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from proctor_app.models import Organisation, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from proctor_app.services.webhooks import endpoints
from proctor_app.services.webhooks.delivery import redeliver

OPERATOR_EVENTS = ["operator.alert"]


@dataclass(frozen=True)
class LogLine:
    delivery_id: int
    at: datetime
    organisation: str
    url: str
    event_type: str
    webhook_id: str
    number: int
    status_code: int | None
    latency_ms: float
    excerpt: str
    delivery_status: str


def _visible(query, managed: int | None):
    return query if managed is None else query.where(WebhookEndpoint.organisation_id == managed)


def endpoints_for(db: Session, managed: int | None) -> list[tuple[WebhookEndpoint, str]]:
    """(endpoint, organisation slug or "install") of the managed organisations, newest first."""
    rows = db.exec(_visible(select(WebhookEndpoint, Organisation.slug).outerjoin(
        Organisation, Organisation.id == WebhookEndpoint.organisation_id), managed)
        .order_by(WebhookEndpoint.id.desc()))
    return [(endpoint, slug or "install") for endpoint, slug in rows]


def delivery_log(db: Session, managed: int | None, limit: int = 100) -> list[LogLine]:
    rows = db.exec(_visible(
        select(WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookEndpoint, Organisation.slug)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .outerjoin(Organisation, Organisation.id == WebhookEndpoint.organisation_id), managed)
        .order_by(WebhookAttempt.at.desc(), WebhookAttempt.id.desc()).limit(limit))
    return [LogLine(delivery.id, tried.at, slug or "install", endpoint.url, event.type, event.public_id,
                    tried.number, tried.status_code, tried.latency_ms, tried.excerpt, delivery.status)
            for tried, delivery, event, endpoint, slug in rows]


def redeliver_visible(db: Session, managed: int | None, delivery_id: int, now: datetime) -> bool:
    """Redeliver, if the delivery belongs to an endpoint the admin manages."""
    endpoint = db.exec(select(WebhookEndpoint).join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
                       .where(WebhookDelivery.id == delivery_id)).first()
    if endpoint is None or (managed is not None and endpoint.organisation_id != managed):
        return False
    return redeliver(db, delivery_id, now)


def install_endpoint(db: Session) -> WebhookEndpoint | None:
    found = endpoints.endpoints_of(db, None)
    return found[0] if found else None


def set_install_endpoint(db: Session, url: str) -> WebhookEndpoint | None:
    """The install's operator.alert endpoint set to `url` (a new secret when it is new), or
    removed when `url` is empty."""
    current = install_endpoint(db)
    if not url.strip():
        if current is not None:
            endpoints.delete_endpoint(db, current)
        return None
    if current is None:
        return endpoints.create_endpoint(db, None, url, OPERATOR_EVENTS)
    return endpoints.update_endpoint(db, current, url=url, enabled=True)
