"""/api/v1/webhooks: an organisation's webhook endpoints (scope webhooks:manage); the rules are in
services/webhooks/endpoints.py."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import Field

from proctor_app.api.v1.auth import required_scope
from proctor_app.api.v1.problems import ApiProblem, problem_content
from proctor_app.api.v1.schemas import Strict
from proctor_app.api.v1.sessions import COMMON, ONE, _principal
from proctor_app.db import session_scope
from proctor_app.models import WebhookEndpoint
from proctor_app.services.webhooks import endpoints
from proctor_app.services.webhooks.outbox import ALL, EVENT_TYPES

EventType = Literal[(*EVENT_TYPES, ALL)]  # type: ignore[valid-type]
EndpointId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{24}$", description="the endpoint's id")]
MANAGE = required_scope("webhooks:manage")
WRITE = {**COMMON, 400: problem_content("Malformed JSON"), 415: problem_content("Not JSON")}

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class EndpointCreate(Strict):
    url: str = Field(max_length=2000, description="https URL the events are POSTed to")
    events: list[EventType] = Field(min_length=1, max_length=20, description='event types, or ["*"] for all')


class EndpointUpdate(Strict):
    url: str | None = Field(default=None, max_length=2000)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=20)
    enabled: bool | None = Field(default=None, description="true also resumes a paused or disabled endpoint")


class Endpoint(Strict):
    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str = Field(description="why the app paused or disabled it, if it did")
    created_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="signs the deliveries (Standard Webhooks); shown only now")


class EndpointList(Strict):
    items: list[Endpoint]


def _out(endpoint: WebhookEndpoint, model=Endpoint, **extra):
    return model(id=endpoint.public_id, url=endpoint.url, events=endpoint.events, enabled=endpoint.enabled,
                 disabled_reason=endpoint.disabled_reason, created_at=endpoint.created_at, **extra)


def _found(db, organisation_id: int, endpoint_id: str) -> WebhookEndpoint:
    try:
        return endpoints.endpoint_of(db, organisation_id, endpoint_id)
    except endpoints.EndpointNotFound:
        raise ApiProblem(404, "No such webhook endpoint.") from None


@router.post("", status_code=201, response_model=EndpointWithSecret, openapi_extra=MANAGE, responses=WRITE)
def create_endpoint(body: EndpointCreate, request: Request) -> EndpointWithSecret:
    principal = _principal(request)
    with session_scope() as db:
        try:
            endpoint = endpoints.create_endpoint(db, principal.organisation_id, body.url, list(body.events))
        except endpoints.EndpointError as exc:
            raise ApiProblem(422, str(exc)) from None
        return _out(endpoint, EndpointWithSecret, secret=endpoint.secret)


@router.get("", response_model=EndpointList, openapi_extra=MANAGE, responses=COMMON)
def list_endpoints(request: Request) -> EndpointList:
    principal = _principal(request)
    with session_scope() as db:
        return EndpointList(items=[_out(e) for e in endpoints.endpoints_of(db, principal.organisation_id)])


@router.get("/{endpoint_id}", response_model=Endpoint, openapi_extra=MANAGE, responses=ONE)
def get_endpoint(endpoint_id: EndpointId, request: Request) -> Endpoint:
    principal = _principal(request)
    with session_scope() as db:
        return _out(_found(db, principal.organisation_id, endpoint_id))


@router.patch("/{endpoint_id}", response_model=Endpoint, openapi_extra=MANAGE, responses={**WRITE, **ONE})
def update_endpoint(endpoint_id: EndpointId, body: EndpointUpdate, request: Request) -> Endpoint:
    principal = _principal(request)
    with session_scope() as db:
        endpoint = _found(db, principal.organisation_id, endpoint_id)
        try:
            endpoints.update_endpoint(db, endpoint, body.url, None if body.events is None else list(body.events),
                                      body.enabled)
        except endpoints.EndpointError as exc:
            raise ApiProblem(422, str(exc)) from None
        return _out(endpoint)


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret, openapi_extra=MANAGE,
             responses=ONE)
def rotate_secret(endpoint_id: EndpointId, request: Request) -> EndpointWithSecret:
    """A new secret; the old one also signs for 24 hours (two signatures in webhook-signature)."""
    principal = _principal(request)
    with session_scope() as db:
        endpoint = endpoints.rotate_secret(db, _found(db, principal.organisation_id, endpoint_id))
        return _out(endpoint, EndpointWithSecret, secret=endpoint.secret)


@router.delete("/{endpoint_id}", status_code=204, openapi_extra=MANAGE, responses=ONE)
def delete_endpoint(endpoint_id: EndpointId, request: Request) -> Response:
    principal = _principal(request)
    with session_scope() as db:
        endpoints.delete_endpoint(db, _found(db, principal.organisation_id, endpoint_id))
    return Response(status_code=204)
