"""WebRTC signalling for live proctoring, in the WHIP shape (RFC 9725) and its WHEP twin.

POST an SDP offer, get 201 + Location + the SDP answer (and `Link: rel="ice-server"` headers with
TURN credentials); DELETE the Location to end. The server answers with all its ICE candidates, so
there is nothing to trickle, and aiortc cannot restart ICE: PATCH answers 405, as RFC 9725 asks of
a resource that supports neither. OPTIONS says `Accept-Post: application/sdp` (cross-origin
preflights are answered by the app's CORS middleware). Refusals: 400 malformed, 415 not
application/sdp, 422 an offer the relay cannot answer, 503 too many viewers.
- Publish (candidate): authorised by the attempt's upload token (`Authorization: Bearer`).
- View: a proctor, supervisor or admin by the login session cookie (proctors only for exams they
  are assigned to); or an integrator's API key with sessions:read for its organisation's attempts,
  by `Authorization: Bearer` or by a signed, expiring viewer link made for the key (then the
  Location is signed too, so a standard WHEP player can end the session). Every view's start and
  end is audited (services/live_views.py).
"""

import contextlib

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from proctor_app.api.ingest import bearer_token
from proctor_app.auth.roles import LIVE_VIEW
from proctor_app.auth.sessions import SESSION_COOKIE, user_for_token
from proctor_app.auth.tokens import token_hash
from proctor_app.db import session_scope
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.live.relay import LIVE_STREAMS, LiveRequestError
from proctor_app.media.playback.links import KEY_PARAM, LinkError, check_key_link, key_link
from proctor_app.models import Attempt, AttemptStatus, Exam
from proctor_app.runtime import ice_servers, relay, upload_store
from proctor_app.services.api_keys import authenticate, key_reads_attempt, principal_for_key
from proctor_app.services.live import live_audio, live_streams, may_watch
from proctor_app.services.live_views import LiveViewer, audit_view_started
from proctor_app.services.organisations import sees_attempt

MAX_OFFER_BYTES = 64 * 1024
# What an API key needs to watch its organisation's attempts live.
LIVE_SCOPE = "sessions:read"
SESSIONS = "/api/live/sessions"


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.response = PlainTextResponse(message, status_code=status,
                                          headers={"Cache-Control": "no-store", **(headers or {})})


def live_view_path(attempt_id: int, stream: str) -> str:
    """The WHEP endpoint of one stream of an attempt."""
    return f"/api/live/attempts/{attempt_id}/streams/{stream}/view"


def _attempt_id(request: Request) -> int:
    raw = request.path_params["attempt_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        raise Refused(404, "No such attempt.")
    return int(raw)


async def _offer(request: Request) -> str:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/sdp":
        raise Refused(415, "The offer must be sent as application/sdp.")
    body = b""
    try:
        async for part in request.stream():
            body += part
            if len(body) > MAX_OFFER_BYTES:
                raise Refused(413, "The offer is too large.")
    except ClientDisconnect:
        raise Refused(400, "The client went away.") from None
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise Refused(400, "The offer is not text.") from None


def _created(session_id: str, answer: str, who: str, location: str | None = None) -> Response:
    response = Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": location or f"{SESSIONS}/{session_id}", "Cache-Control": "no-store"})
    for link in ice_servers.link_headers(who):
        response.headers.append("Link", link)
    # Clients on other origins (RFC 9725 players, tools) read these.
    response.headers["Access-Control-Expose-Headers"] = "Location, Link"
    return response


async def offer_options(request: Request) -> Response:
    return Response(status_code=204, headers={"Accept-Post": "application/sdp", "Allow": "POST, OPTIONS",
                                              "Cache-Control": "no-store"})


def _publish_check(token: str | None, attempt_id: int, streams: list[str]) -> bool:
    """Refuses what the token or the exam does not allow; returns whether audio may go live."""
    try:
        scope = upload_store.authorize(token, attempt_id)
    except IngestError as exc:
        raise Refused(exc.status, exc.message,
                      {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None) from None
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt.status != AttemptStatus.in_progress:
            raise Refused(409, "The attempt is not in progress.")
        exam = db.get(Exam, attempt.exam_id)
        allowed, audio = live_streams(db, exam), live_audio(db, exam)
    if not allowed:
        raise Refused(403, "Live video is off for this exam.")
    for stream in streams:
        if stream not in allowed or (stream == "screen" and "screen" not in scope.streams):
            raise Refused(403, f"This attempt does not publish the {stream} stream live.")
    return audio


async def publish(request: Request) -> Response:
    try:
        attempt_id = _attempt_id(request)
        streams = [s for s in request.query_params.get("streams", "camera").split(",") if s]
        token = bearer_token(request)
        audio = await run_in_threadpool(_publish_check, token, attempt_id, streams)
        offer = await _offer(request)
        session_id, answer = await relay.publish(attempt_id, f"token:{token_hash(token)}", offer, streams,
                                                 allow_audio=audio)
    except Refused as refused:
        return refused.response
    except LiveRequestError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    return _created(session_id, answer, f"attempt:{attempt_id}")


def _cookie_viewer(request: Request, db: Session, attempt: Attempt | None) -> LiveViewer:
    user = user_for_token(request.cookies.get(SESSION_COOKIE), db)
    if user is None:
        raise Refused(401, "Sign in to watch live video.", {"WWW-Authenticate": "Bearer"})
    if user.role not in LIVE_VIEW:
        raise Refused(403, "Your account may not watch live video.")
    if not sees_attempt(db, user, attempt):
        raise Refused(404, "No such attempt.")
    if not may_watch(db, user, attempt):
        raise Refused(403, "You are not a proctor of this exam.")
    return LiveViewer(user_id=user.id)


def _key_viewer(request: Request, db: Session, attempt_id: int) -> LiveViewer | None:
    """An integrator's API key with sessions:read, by `Authorization: Bearer` or by a signed
    viewer link made for it (GET /api/v1/sessions/{id}/live-viewer); None when neither is sent."""
    if KEY_PARAM in request.query_params:
        try:
            key_id = check_key_link(request.url.path, request.query_params[KEY_PARAM],
                                    request.query_params.get("exp"), request.query_params.get("sig"))
        except LinkError as exc:
            raise Refused(403, str(exc)) from None
        viewer = LiveViewer(api_key_id=key_id, via_link=True)
    else:
        raw = bearer_token(request)
        if raw is None:
            return None
        principal = authenticate(db, raw)
        if principal is None:
            raise Refused(401, "The API key is invalid, revoked or expired.", {"WWW-Authenticate": "Bearer"})
        if LIVE_SCOPE not in principal.scopes:
            raise Refused(403, f"The API key lacks the scope {LIVE_SCOPE}.")
        viewer = LiveViewer(api_key_id=principal.key_id)
    # Also refuses a link whose key was revoked since.
    if not key_reads_attempt(db, viewer.api_key_id, attempt_id, scope=LIVE_SCOPE):
        raise Refused(404, "No such attempt.")
    return viewer


def _view_check(request: Request, attempt_id: int, stream: str) -> LiveViewer:
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        viewer = _key_viewer(request, db, attempt_id) or _cookie_viewer(request, db, attempt)
        if attempt.status != AttemptStatus.in_progress:
            raise Refused(409, "The attempt is not in progress.")
        if stream not in live_streams(db, db.get(Exam, attempt.exam_id)):
            raise Refused(403, "This attempt does not publish that stream live.")
    return viewer


def _view_started(viewer: LiveViewer, attempt_id: int, stream: str, session_id: str) -> None:
    with session_scope() as db:
        audit_view_started(db, viewer, attempt_id, stream, session_id)


async def view(request: Request) -> Response:
    try:
        attempt_id = _attempt_id(request)
        stream = request.path_params["stream"]
        if stream not in LIVE_STREAMS:
            raise Refused(404, "No such stream.")
        viewer = await run_in_threadpool(_view_check, request, attempt_id, stream)
        offer = await _offer(request)
        session_id, answer = await relay.view(attempt_id, stream, viewer.owner, offer)
    except Refused as refused:
        return refused.response
    except LiveRequestError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    await run_in_threadpool(_view_started, viewer, attempt_id, stream, session_id)
    # A player that came by a signed link has no other credential: its Location is signed too.
    location = key_link(viewer.api_key_id, f"{SESSIONS}/{session_id}") if viewer.via_link else None
    return _created(session_id, answer, viewer.owner, location)


def _callers(request: Request) -> set[str]:
    """Who asks, in every form sessions record their owner: an upload token, an API key (by
    Bearer, or by the signed link of a session's Location), a signed-in user."""
    found = set()
    token = bearer_token(request)
    if token:
        found.add(f"token:{token_hash(token)}")
        principal = principal_for_key(token)
        if principal is not None:
            found.add(LiveViewer(api_key_id=principal.key_id).owner)
    if KEY_PARAM in request.query_params:
        with contextlib.suppress(LinkError):
            found.add(LiveViewer(api_key_id=check_key_link(
                request.url.path, request.query_params[KEY_PARAM], request.query_params.get("exp"),
                request.query_params.get("sig"))).owner)
    user = user_for_token(request.cookies.get(SESSION_COOKIE))
    if user:
        found.add(LiveViewer(user_id=user.id).owner)
    return found


async def _own_session(request: Request) -> str:
    """The session of the URL, when the caller is the one who opened it."""
    session_id = request.path_params["session_id"]
    callers = await run_in_threadpool(_callers, request)
    if not callers:
        raise Refused(401, "Credentials are required.", {"WWW-Authenticate": "Bearer"})
    owner = await relay.session_owner(session_id)
    if owner is None:
        raise Refused(404, "No such session.")
    if owner not in callers:
        raise Refused(403, "This session is not yours.")
    return session_id


async def end(request: Request) -> Response:
    try:
        await relay.end(await _own_session(request))
    except Refused as refused:
        return refused.response
    except LiveRequestError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    return Response(status_code=200)


async def no_trickle(request: Request) -> Response:
    try:
        await _own_session(request)
    except Refused as refused:
        return refused.response
    except LiveRequestError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    return PlainTextResponse("The answer carries all candidates; trickle ICE is not used.",
                             status_code=405, headers={"Allow": "DELETE"})


routes = [
    Route("/api/live/attempts/{attempt_id}/publish", publish, methods=["POST"]),
    Route("/api/live/attempts/{attempt_id}/publish", offer_options, methods=["OPTIONS"]),
    Route("/api/live/attempts/{attempt_id}/streams/{stream}/view", view, methods=["POST"]),
    Route("/api/live/attempts/{attempt_id}/streams/{stream}/view", offer_options, methods=["OPTIONS"]),
    Route(SESSIONS + "/{session_id}", end, methods=["DELETE"]),
    Route(SESSIONS + "/{session_id}", no_trickle, methods=["PATCH"]),
]
