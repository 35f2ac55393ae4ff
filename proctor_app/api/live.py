"""WebRTC signalling for live proctoring, in the WHIP shape (RFC 9725) and its WHEP twin.

POST an SDP offer, get 201 + Location + the SDP answer (and `Link: rel="ice-server"` headers with
TURN credentials); DELETE the Location to end. The server answers with all its ICE candidates, so
there is nothing to trickle: PATCH answers 405. OPTIONS says `Accept-Post: application/sdp`
(cross-origin preflights are answered by the app's CORS middleware). Refusals: 400 malformed,
415 not application/sdp, 422 an offer the relay cannot answer, 503 too many viewers.
- Publish (candidate): authorised by the attempt's upload token (`Authorization: Bearer`).
- View (proctor, supervisor, admin): authorised by the login session cookie; proctors only for
  exams they are assigned to.
"""

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from proctor_app.api.ingest import bearer_token
from proctor_app.auth.roles import LIVE_VIEW
from proctor_app.auth.sessions import SESSION_COOKIE, CurrentUser, user_for_token
from proctor_app.auth.tokens import token_hash
from proctor_app.db import session_scope
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.live.relay import LIVE_STREAMS, LiveRequestError
from proctor_app.models import Attempt, AttemptStatus, Exam
from proctor_app.runtime import ice_servers, relay, upload_store
from proctor_app.services.live import live_audio, live_streams, may_watch
from proctor_app.services.organisations import sees_attempt

MAX_OFFER_BYTES = 64 * 1024
SESSIONS = "/api/live/sessions"


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.response = PlainTextResponse(message, status_code=status,
                                          headers={"Cache-Control": "no-store", **(headers or {})})


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


def _created(session_id: str, answer: str, who: str) -> Response:
    response = Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"{SESSIONS}/{session_id}", "Cache-Control": "no-store"})
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


def _viewer(request: Request) -> CurrentUser:
    user = user_for_token(request.cookies.get(SESSION_COOKIE))
    if user is None:
        raise Refused(401, "Sign in to watch live video.")
    if user.role not in LIVE_VIEW:
        raise Refused(403, "Your account may not watch live video.")
    return user


def _view_check(request: Request, attempt_id: int, stream: str) -> CurrentUser:
    user = _viewer(request)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if not sees_attempt(db, user, attempt):
            raise Refused(404, "No such attempt.")
        if not may_watch(db, user, attempt):
            raise Refused(403, "You are not a proctor of this exam.")
        if attempt.status != AttemptStatus.in_progress:
            raise Refused(409, "The attempt is not in progress.")
        if stream not in live_streams(db, db.get(Exam, attempt.exam_id)):
            raise Refused(403, "This attempt does not publish that stream live.")
    return user


async def view(request: Request) -> Response:
    try:
        attempt_id = _attempt_id(request)
        stream = request.path_params["stream"]
        if stream not in LIVE_STREAMS:
            raise Refused(404, "No such stream.")
        user = await run_in_threadpool(_view_check, request, attempt_id, stream)
        offer = await _offer(request)
        session_id, answer = await relay.view(attempt_id, stream, f"user:{user.id}", offer)
    except Refused as refused:
        return refused.response
    except LiveRequestError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    return _created(session_id, answer, f"user:{user.id}")


def _caller(request: Request) -> str | None:
    """Who asks, in the form sessions record their owner."""
    token = bearer_token(request)
    if token:
        return f"token:{token_hash(token)}"
    user = user_for_token(request.cookies.get(SESSION_COOKIE))
    return f"user:{user.id}" if user else None


async def _own_session(request: Request) -> str:
    """The session of the URL, when the caller is the one who opened it."""
    session_id = request.path_params["session_id"]
    caller = await run_in_threadpool(_caller, request)
    if caller is None:
        raise Refused(401, "Credentials are required.", {"WWW-Authenticate": "Bearer"})
    owner = await relay.session_owner(session_id)
    if owner is None:
        raise Refused(404, "No such session.")
    if owner != caller:
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
