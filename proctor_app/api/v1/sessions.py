"""/api/v1/sessions: thin handlers; the rules are in services/api_sessions.py."""

from datetime import timezone
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime
from sqlmodel import Session

from proctor_app.api.live import live_view_path
from proctor_app.api.v1.auth import PRINCIPAL, required_scope
from proctor_app.api.v1.problems import ApiProblem, problem_content
from proctor_app.api.v1.schemas import (
    Candidate,
    Erasure,
    Event,
    EventPage,
    Gap,
    LiveStream,
    LiveViewerLinks,
    Playback,
    Review,
    SessionCreate,
    SessionCreated,
    SessionDetail,
    SessionPage,
    SessionSettings,
    SessionStatus,
    SessionSummary,
    SessionToken,
    Stream,
)
from proctor_app.config import config
from proctor_app.db import read_scope, session_scope
from proctor_app.media.playback.links import key_link, key_recording_link, link_expiry
from proctor_app.models import ApiSession, Attempt, AttemptStatus, Exam, RecordingStatus, utcnow
from proctor_app.services import api_sessions, retention, sdk_sessions
from proctor_app.services.api_keys import KeyPrincipal
from proctor_app.services.live import live_streams
from proctor_app.services.proctoring_texts import describe_event
from proctor_app.services.review import seconds_into

COMMON = {401: problem_content("No valid API key"), 403: problem_content("The key lacks the scope"),
          422: problem_content("Invalid parameters or body")}
ONE = {**COMMON, 404: problem_content("No such session in your organisation")}
# The id's own format: anything else is refused (422) before a lookup.
SessionId = Annotated[str, Path(pattern=r"^ses_[0-9a-f]{24}$", description="the session's id")]

router = APIRouter(prefix="/sessions", tags=["sessions"])


def _principal(request: Request) -> KeyPrincipal:
    principal = request.scope.get(PRINCIPAL)  # set by ApiKeyAuth before the body is read
    if principal is None:  # a route ApiKeyAuth does not know: refused, never served unchecked
        raise ApiProblem(401, "An API key is required.")
    return principal


def _summary(session: ApiSession, attempt: Attempt) -> dict:
    return {"id": session.public_id, "external_id": session.external_id, "status": attempt.status,
            "created_at": session.created_at, "started_at": attempt.started_at,
            "ended_at": attempt.ended_at}


def _found(db: Session, principal: KeyPrincipal, session_id: str) -> tuple[ApiSession, Attempt]:
    try:
        return api_sessions.session_of(db, principal.organisation_id, session_id)
    except api_sessions.SessionNotFound:
        raise ApiProblem(404, "No such session.") from None


def _origin(request: Request) -> str:
    """Where links in answers point: the public URL, else the host the caller reached."""
    return (config.public_url or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def _created(request: Request, session: ApiSession, attempt: Attempt) -> SessionCreated:
    return SessionCreated(**_summary(session, attempt), launch_expires_at=session.launch_expires_at,
                          candidate_url=_origin(request) + api_sessions.launch_path(session))


@router.post("", status_code=201, response_model=SessionCreated, openapi_extra=required_scope("sessions:write"),
             responses={**COMMON, 200: {"model": SessionCreated, "description": "Existing session (same external_id)"},
                        400: problem_content("Malformed JSON"), 415: problem_content("Not JSON")})
def create_session(body: SessionCreate, request: Request, response: Response) -> SessionCreated:
    principal = _principal(request)
    spec = api_sessions.NewSession(
        external_id=body.external_id, candidate_name=body.candidate.name, candidate_email=body.candidate.email,
        metadata=body.metadata, return_url=body.return_url, **body.settings.model_dump())
    with session_scope() as db:
        session, created = api_sessions.create_session(db, principal.organisation_id, principal.key_id, spec)
        attempt = db.get(Attempt, session.attempt_id)
        if created:
            api_sessions.audit_api(db, principal.key_id, "api_session_created", session)
    if not created:
        response.status_code = 200
    return _created(request, session, attempt)


@router.get("", response_model=SessionPage, openapi_extra=required_scope("sessions:read"), responses=COMMON)
async def list_sessions(request: Request, status: SessionStatus | None = None,
                        created_after: AwareDatetime | None = None,
                        limit: Annotated[int, Query(ge=1, le=100)] = 50,
                        cursor: Annotated[str | None, Query(max_length=200)] = None) -> dict:
    principal = _principal(request)
    try:
        created_after = created_after and created_after.astimezone(timezone.utc)
    except OverflowError:  # e.g. year 1 with a positive offset: before the first representable time
        raise ApiProblem(422, "created_after is out of range.") from None

    # The query alone goes to a worker thread: a plain `def` handler takes two hops (FastAPI also
    # validates its answer in one), a quarter of a page's time through the app (bench/api.py).
    def page():
        with read_scope() as conn:
            return api_sessions.list_sessions(conn, principal.organisation_id, status, created_after, limit, cursor)

    try:
        rows, next_cursor = await anyio.to_thread.run_sync(page)
    except api_sessions.BadCursor:
        raise ApiProblem(422, "The cursor is not one this API gave out.") from None
    # Plain dicts from unpacked rows (a Row's attribute lookup costs ten times as much), validated
    # once against SessionPage while FastAPI serialises them.
    return {"items": [{"id": public_id, "external_id": external_id, "status": row_status, "created_at": created_at,
                       "started_at": started_at, "ended_at": ended_at}
                      for _, public_id, external_id, row_status, created_at, started_at, ended_at in rows],
            "next_cursor": next_cursor}


def _stream(recording, principal: KeyPrincipal, now: float) -> Stream:
    playable = "recordings:read" in principal.scopes and recording.status in (
        RecordingStatus.completed, RecordingStatus.partial)

    def link(asset: str, path: str) -> str | None:
        return key_recording_link(principal.key_id, recording.attempt_id, recording.stream, asset, now) if path else None

    return Stream(stream=recording.stream, status=recording.status, duration_s=recording.duration_s,
                  gaps=[Gap(**gap) for gap in recording.gaps], size=recording.size_bytes,
                  sha256=recording.sha256 or None,
                  playback=Playback(mp4_url=link("video", recording.mp4_path),
                                    poster_url=link("poster", recording.poster_path),
                                    sprite_url=link("sprite", recording.sprite_path)) if playable else None)


@router.get("/{session_id}", response_model=SessionDetail, openapi_extra=required_scope("sessions:read"),
            responses=ONE)
def get_session(session_id: SessionId, request: Request) -> SessionDetail:
    principal = _principal(request)
    with session_scope() as db:
        session, attempt = _found(db, principal, session_id)
        exam = db.get(Exam, attempt.exam_id)
        recordings = api_sessions.recordings_of(db, attempt.id)
        counts = api_sessions.event_counts(db, attempt.id)
    now = utcnow().timestamp()
    return SessionDetail(
        **_summary(session, attempt), deadline_at=attempt.deadline_at, metadata=session.meta,
        candidate=Candidate(name=session.candidate_name, email=session.candidate_email),
        return_url=session.return_url,
        settings=SessionSettings(camera=exam.recording, screen=exam.screen_recording, live=exam.live_video,
                                 snapshots_interval_s=exam.snapshot_interval_s,
                                 required=exam.recording_required, duration_minutes=exam.duration_minutes),
        streams=[_stream(r, principal, now) for r in recordings],
        events={severity: counts.get(severity, 0) for severity in ("info", "warning", "critical")},
        review=Review(status=attempt.review_status, notes=attempt.review_notes),
        media_deleted_at=attempt.media_deleted_at)


@router.post("/{session_id}/end", response_model=SessionSummary, openapi_extra=required_scope("sessions:write"),
             responses=ONE)
def end_session(session_id: SessionId, request: Request) -> SessionSummary:
    """End the recording and queue processing; ending an ended session changes nothing."""
    principal = _principal(request)
    with session_scope() as db:
        _found(db, principal, session_id)
        session, attempt = api_sessions.end_session(db, principal.organisation_id, session_id)
    return SessionSummary(**_summary(session, attempt))


@router.post("/{session_id}/token", response_model=SessionToken, openapi_extra=required_scope("sessions:write"),
             responses=ONE)
def session_token(session_id: SessionId, request: Request) -> SessionToken:
    """A token, valid for minutes, with which /sdk/proctor.js records this session on a page of
    one of your organisation's allowed origins."""
    principal = _principal(request)
    with session_scope() as db:
        session, _ = _found(db, principal, session_id)
    token, expires_at = sdk_sessions.sdk_token(session)
    return SessionToken(token=token, expires_at=expires_at)


@router.get("/{session_id}/events", response_model=EventPage, openapi_extra=required_scope("sessions:read"),
            responses=ONE)
def session_events(session_id: SessionId, request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 100,
                   cursor: Annotated[str | None, Query(max_length=200)] = None) -> EventPage:
    principal = _principal(request)
    with session_scope() as db:
        _found(db, principal, session_id)
        try:
            attempt, events, next_cursor = api_sessions.events_of(db, principal.organisation_id, session_id,
                                                                  limit, cursor)
        except api_sessions.BadCursor:
            raise ApiProblem(422, "The cursor is not one this API gave out.") from None
    return EventPage(items=[Event(id=e.id, kind=e.kind, text=describe_event(e.kind, e.data).sentence,
                                  severity=e.severity, server_time=e.server_time,
                                  t_s=seconds_into(attempt, e.server_time), data=e.data) for e in events],
                     next_cursor=next_cursor)


@router.get("/{session_id}/live-viewer", response_model=LiveViewerLinks,
            openapi_extra=required_scope("sessions:read"), responses={**ONE, 409: problem_content("Not in progress, or live video is off for it")})
def live_viewer(session_id: SessionId, request: Request) -> LiveViewerLinks:
    """WHEP URLs to watch the session live in a standard player (or POST an offer to
    /api/live/attempts/{attempt}/streams/{stream}/view with this key as Bearer)."""
    principal = _principal(request)
    with session_scope() as db:
        session, attempt = _found(db, principal, session_id)
        if attempt.status != AttemptStatus.in_progress:
            raise ApiProblem(409, "The session is not in progress.")
        streams = live_streams(db, db.get(Exam, attempt.exam_id))
    if not streams:
        raise ApiProblem(409, "Live video is off for this session.")
    now = utcnow().timestamp()
    return LiveViewerLinks(streams=[LiveStream(stream=stream, whep_url=_origin(request) + key_link(
        principal.key_id, live_view_path(attempt.id, stream), now)) for stream in streams],
        expires_at=link_expiry(now))


@router.delete("/{session_id}/media", response_model=Erasure, openapi_extra=required_scope("recordings:delete"),
               responses={**ONE, 409: problem_content("Under legal hold, still recording, or being processed")})
def erase_media(session_id: SessionId, request: Request) -> Erasure:
    """Delete the session's recordings and snapshots now (erasure on request), audited."""
    principal = _principal(request)
    with session_scope() as db:
        session, _ = _found(db, principal, session_id)
        try:
            deleted = retention.erase_media(db, session.attempt_id, utcnow(), "Erasure requested through the API.",
                                            data={"api_key": principal.key_id, "session": session.public_id})
        except (retention.ErasureRefused, retention.RetentionBusy) as exc:
            raise ApiProblem(409, str(exc)) from None
        attempt = db.get(Attempt, session.attempt_id, populate_existing=True)
    return Erasure(id=session.public_id, media_deleted_at=attempt.media_deleted_at, deleted_now=deleted)
