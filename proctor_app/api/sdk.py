"""The candidate side of API sessions over HTTP: the launch link (/launch/{token}), the embeddable
recorder (/sdk/proctor.js) and the two calls it makes with the integrator's session token.

The SDK's calls answer with CORS headers only for the origins the session's organisation allows
(services/sdk_sessions.origin_allowed); a page of any other origin gets no grant and a 403, and
changes nothing. Their bodies are sent as text/plain JSON, so they need no preflight.
"""

import html
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from proctor_app.api.auth import set_session_cookie
from proctor_app.config import config
from proctor_app.db import session_scope
from proctor_app.models import AttemptStatus, Exam
from proctor_app.sdk_bundle import sdk_bundle
from proctor_app.services import attempts, sdk_sessions
from proctor_app.services.attempts import AttemptError
from proctor_app.services.consent import capture_plan, consent_lines
from proctor_app.services.settings import get_setting
from proctor_app.services.uploads import issue_upload_token

MAX_BODY_BYTES = 16 * 1024
SESSION_PAGE = "/proctoring/"
NO_STORE = {"Cache-Control": "no-store"}


def _refused_page(message: str, status: int) -> HTMLResponse:
    body = (f"<!doctype html><html lang=en><meta charset=utf-8><title>Proctoring session</title>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
            f"<h1>This link cannot be used</h1><p id=launch-refused>{html.escape(message)}</p></body></html>")
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


def _launch(token: str):
    with session_scope() as db:
        return sdk_sessions.launch(db, token)


async def launch(request: Request) -> Response:
    """Opens the session's page signed in as its candidate, once; the page then continues on the
    login session (a reload needs no link)."""
    try:
        launched = await run_in_threadpool(_launch, request.path_params["token"])
    except sdk_sessions.LaunchRefused as exc:
        return _refused_page(str(exc), 410)
    response = RedirectResponse(f"{SESSION_PAGE}{launched.exam_id}", status_code=303, headers=NO_STORE)
    set_session_cookie(response, launched.login_token, config.public_url)
    return response


async def proctor_js(_request: Request) -> Response:
    """The recorder as one ES module; any site may load the code (what it may do is decided by
    the session token and the origin check of the calls it makes)."""
    code = await run_in_threadpool(sdk_bundle)
    return Response(code, media_type="text/javascript",
                    headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})


def _problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": "Refused", "status": status, "detail": detail},
                        status_code=status, media_type="application/problem+json",
                        headers={**NO_STORE, **(headers or {})})


def _session_view(db, attempt) -> dict:
    plan = capture_plan(db, db.get(Exam, attempt.exam_id))
    view = {"status": attempt.status, "uses_camera": plan.uses_camera, "required": plan.required,
            "consent": consent_lines(plan, get_setting(db, "retention_days"))}
    if attempt.status != AttemptStatus.not_started:
        grant = issue_upload_token(db, attempt)
        if grant is not None:
            view["recorder"] = sdk_sessions.recorder_props(db, attempt, grant)
    return view


def _describe(body: dict, origin: str) -> dict:
    with session_scope() as db:
        _, attempt = sdk_sessions.redeem(db, body.get("token", ""), origin)
        return _session_view(db, attempt)


def _start(body: dict, origin: str) -> dict:
    """Consent (the text the page showed), the device check's outcome, then the start."""
    with session_scope() as db:
        _, attempt = sdk_sessions.redeem(db, body.get("token", ""), origin)
        plan = capture_plan(db, db.get(Exam, attempt.exam_id))
        current = "\n".join(consent_lines(plan, get_setting(db, "retention_days")))
        if attempt.status == AttemptStatus.not_started:
            if body.get("consent") != current:
                raise AttemptError("The terms have changed: read them again, then accept.")
            device = body.get("device") if isinstance(body.get("device"), dict) else {}
            if plan.uses_camera and plan.required and device.get("ok") is not True:
                raise AttemptError("This session needs a working camera and microphone.")
            attempts.accept_consent(db, attempt, current)
            attempts.record_device_check(db, attempt, device.get("ok") is True, device)
            attempts.start(db, attempt, body.get("clock_offset_ms"))
        return _session_view(db, attempt)


def _status(body: dict, origin: str) -> dict:
    with session_scope() as db:
        return {"status": sdk_sessions.recording(db, body.get("token", ""), origin).status}


def _end(body: dict, origin: str) -> dict:
    """The candidate ends the session from the SDK (as the End button of the launch page does)."""
    with session_scope() as db:
        attempt = sdk_sessions.recording(db, body.get("token", ""), origin)
        if attempt.status == AttemptStatus.in_progress:
            attempts.submit(db, attempt)
        return {"status": attempt.status}


def _sdk_call(action):
    async def endpoint(request: Request) -> Response:
        origin = request.headers.get("origin", "")
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, "The request body is too large.")
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("token"), str):
                raise ValueError
        except ValueError:
            return _problem(400, "Send {\"token\": ...} as JSON.")
        try:
            answer = await run_in_threadpool(action, data, origin)
        except sdk_sessions.SdkRefused as exc:
            return _problem(403, str(exc))  # and no CORS grant: the page cannot even read why
        except AttemptError as exc:
            return _problem(409, str(exc), {"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        return JSONResponse(answer, headers={**NO_STORE, "Access-Control-Allow-Origin": origin, "Vary": "Origin"})

    return endpoint


routes = [
    Route("/launch/{token}", launch, methods=["GET"]),
    Route("/sdk/proctor.js", proctor_js, methods=["GET"]),
    Route("/api/sdk/session", _sdk_call(_describe), methods=["POST"]),
    Route("/api/sdk/start", _sdk_call(_start), methods=["POST"]),
    # With the recording's upload token: it outlives the session token.
    Route("/api/sdk/status", _sdk_call(_status), methods=["POST"]),
    Route("/api/sdk/end", _sdk_call(_end), methods=["POST"]),
]
