"""/api/v1/metrics: the organisation's recording and webhook figures over a window."""

from datetime import datetime, timedelta, timezone

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from proctor_app.api.v1.auth import required_scope
from proctor_app.api.v1.problems import ApiProblem
from proctor_app.api.v1.sessions import COMMON, _principal
from proctor_app.db import session_scope
from proctor_app.models import utcnow
from proctor_app.services.integrator_metrics import organisation_metrics

DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=366)

router = APIRouter(tags=["metrics"])


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None


class WebhookFigures(BaseModel):
    tries: int
    success_rate: float | None


class Metrics(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    recordings: dict[str, int] = Field(description="recordings of sessions that ended in the window, by status")
    success_rate: float | None = Field(description="completed or partial among those processed")
    processing_s: Percentiles
    failures: dict[str, int] = Field(description="failed recordings by reason")
    storage_bytes: int = Field(description="bytes of the organisation's recordings now kept")
    webhooks: WebhookFigures


@router.get("/metrics", response_model=Metrics, response_model_by_alias=True,
            openapi_extra=required_scope("recordings:read"), responses=COMMON)
def metrics(request: Request, from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
            to: AwareDatetime | None = None) -> dict:
    """Figures of the sessions that ended in [from, to) (default: the last 7 days)."""
    principal = _principal(request)
    try:
        end = (to or utcnow()).astimezone(timezone.utc)
        start = (from_.astimezone(timezone.utc) if from_ else end - DEFAULT_SPAN)
    except OverflowError:
        raise ApiProblem(422, "from or to is out of range.") from None
    if not timedelta(0) < end - start <= MAX_SPAN:
        raise ApiProblem(422, "from must be before to, at most 366 days apart.")
    with session_scope() as db:
        return organisation_metrics(db, principal.organisation_id, start, end)
