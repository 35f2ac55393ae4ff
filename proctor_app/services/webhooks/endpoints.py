"""Managing webhook endpoints: create (the secret is shown once), change, rotate the secret with
an overlap, delete; and the address check that keeps webhooks off the install's own network."""

import base64
import ipaddress
import os
import secrets
import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlmodel import Session, select

from proctor_app.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from proctor_app.services.webhooks.outbox import ALL, EVENT_TYPES

ALLOW_PRIVATE_ENV = "PROCTOR_WEBHOOKS_ALLOW_PRIVATE"
# After a rotation the old secret signs too for this long, so receivers can switch over.
ROTATION_OVERLAP = timedelta(hours=24)
MAX_URL = 2000


class EndpointError(ValueError):
    """A request the endpoint's rules refuse; the message says why."""


class EndpointNotFound(LookupError):
    pass


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def private_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV) == "1"


def refused_address(url: str) -> str | None:
    """Why the URL's host may not be called (loopback, private, link-local...), or None.
    Resolved now: at creation and again before each try (the name may point elsewhere later)."""
    host = urlsplit(url).hostname
    if not host:
        return "The URL has no host."
    if private_allowed():
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return f"The host {host} does not resolve."
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            return f"The host {host} resolves to {ip}, a loopback, private or link-local address."
    return None


def checked_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > MAX_URL:
        raise EndpointError("The URL must be an http(s) URL of at most 2000 characters.")
    if parts.username or parts.password:
        raise EndpointError("The URL may not carry credentials.")
    refused = refused_address(url)
    if refused:
        raise EndpointError(refused)
    return url


def checked_events(events: list[str]) -> list[str]:
    if not events:
        raise EndpointError("Name at least one event type, or \"*\" for all.")
    unknown = sorted(set(events) - set(EVENT_TYPES) - {ALL})
    if unknown:
        raise EndpointError(f"Unknown event type(s): {', '.join(unknown)}.")
    return [ALL] if ALL in events else [t for t in EVENT_TYPES if t in events]


def create_endpoint(db: Session, organisation_id: int | None, url: str, events: list[str]) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(public_id="wh_" + secrets.token_hex(12), organisation_id=organisation_id,
                               url=checked_url(url), events=checked_events(events), secret=new_secret())
    db.add(endpoint)
    db.flush()
    return endpoint


def endpoints_of(db: Session, organisation_id: int | None) -> list[WebhookEndpoint]:
    owner = (WebhookEndpoint.organisation_id == organisation_id if organisation_id is not None
             else WebhookEndpoint.organisation_id.is_(None))
    return list(db.exec(select(WebhookEndpoint).where(owner).order_by(WebhookEndpoint.id)))


def endpoint_of(db: Session, organisation_id: int | None, public_id: str) -> WebhookEndpoint:
    endpoint = db.exec(select(WebhookEndpoint).where(WebhookEndpoint.public_id == public_id)).first()
    if endpoint is None or endpoint.organisation_id != organisation_id:
        raise EndpointNotFound(public_id)
    return endpoint


def update_endpoint(db: Session, endpoint: WebhookEndpoint, url: str | None = None,
                    events: list[str] | None = None, enabled: bool | None = None) -> WebhookEndpoint:
    """Enabling again also resumes one the app paused or disabled (its kept deliveries go out)."""
    if url is not None:
        endpoint.url = checked_url(url)
    if events is not None:
        endpoint.events = checked_events(events)
    if enabled is not None:
        endpoint.enabled = enabled
        endpoint.disabled_reason = ""
    db.add(endpoint)
    return endpoint


def rotate_secret(db: Session, endpoint: WebhookEndpoint, now: datetime | None = None) -> WebhookEndpoint:
    now = now or utcnow()
    endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    db.add(endpoint)
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during the overlap."""
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def delete_endpoint(db: Session, endpoint: WebhookEndpoint) -> None:
    """Its pending deliveries are dropped with it; the delivery log goes too."""
    delivery_ids = list(db.exec(select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)))
    for attempt in db.exec(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids))):
        db.delete(attempt)
    for delivery in db.exec(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)):
        db.delete(delivery)
    db.flush()
    db.delete(endpoint)
