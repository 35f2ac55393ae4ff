"""Sign-in and sign-out: the only places that write the session cookie, as a server response,
so it is HttpOnly (no script ever reads the token), SameSite=Strict, and Secure behind https.

Both refuse posts from other sites (Origin), and sign-in takes JSON only, which no cross-site form
can send. Wrong passwords are throttled (auth/throttle.py) per client address and per account;
the password check runs in a thread, off the event loop that also carries the live relay.
"""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proctor_app.api.clients import client_address, from_this_site
from proctor_app.auth import sessions
from proctor_app.auth.redirects import next_or_home
from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.auth.throttle import LoginThrottle, Throttled
from proctor_app.config import config
from proctor_app.i18n import LANGUAGE_COOKIE, gettext, visitor_language

MAX_BODY_BYTES = 8 * 1024
# Sign-ins take one of a few threads of their own: each argon2 check holds 64 MiB for its length,
# and a flood of sign-ins then queues here instead of filling the pool other handlers use.
_password_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sign-in")


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem details answer."""
    return JSONResponse({"type": "about:blank", "status": status, "code": code, "detail": detail},
                        status_code=status, media_type="application/problem+json",
                        headers={"Cache-Control": "no-store", **(headers or {})})


def _cross_site() -> JSONResponse:
    return problem(403, "cross_site", "Sign-in and sign-out are only accepted from this site's pages.")


def set_session_cookie(response: Response, token: str, public_url: str) -> None:
    response.set_cookie(sessions.SESSION_COOKIE, token, path="/", httponly=True, samesite="strict",
                        secure=public_url.lower().startswith("https://"),
                        max_age=int(sessions.SESSION_LIFETIME.total_seconds()))


async def _credentials(request: Request) -> tuple[str, str, str] | JSONResponse:
    """(email, password, next) from a small JSON body, or the problem to answer."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return problem(415, "json_only", "Send the credentials as application/json.")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "too_large", "The request body is too large.")
    try:
        data = json.loads(body)
        fields = [data.get(name, "") for name in ("email", "password", "next")]
    except (ValueError, AttributeError):
        fields = None
    if fields is None or not all(isinstance(value, str) for value in fields):
        return problem(400, "bad_request", "Send email, password and next as strings.")
    return fields[0], fields[1], fields[2]


def _check_and_login(throttle: LoginThrottle, email: str, password: str, address: str):
    """In a thread: the throttle, the password (argon2), the throttle's bookkeeping."""
    throttle.check(email, address)
    try:
        result = sessions.login(email, password)
    except sessions.AccountDeactivated:  # the right password: not a failure
        raise
    except sessions.LoginError:
        throttle.failed(email, address)
        raise
    throttle.succeeded(email, address)
    return result


def login_route(throttle: LoginThrottle, public_url: str, trusted_proxies: tuple[str, ...]):
    async def login(request: Request) -> Response:
        if not from_this_site(request, public_url):
            return _cross_site()
        credentials = await _credentials(request)
        if isinstance(credentials, Response):
            return credentials
        email, password, target = credentials
        # The sign-in page shows these messages as they come: in the visitor's language.
        lang = visitor_language(request.cookies.get(LANGUAGE_COOKIE, ""), request.headers.get("accept-language", ""))
        address = client_address(request, trusted_proxies)
        try:
            token, user = await asyncio.get_running_loop().run_in_executor(
                _password_threads, _check_and_login, throttle, email, password, address)
        except Throttled as wait:
            minutes = -(-wait.retry_after_s // 60)
            return problem(429, "too_many_attempts",
                           gettext(lang, "Too many failed sign-ins. Try again in {minutes} minute(s).",
                                   minutes=minutes),
                           {"Retry-After": str(wait.retry_after_s)})
        except sessions.AccountDeactivated as exc:
            return problem(403, "deactivated", gettext(lang, str(exc)))
        except sessions.LoginError as exc:
            return problem(401, "wrong_credentials", gettext(lang, str(exc)))
        # A new token at every sign-in; the one the browser had before is ended, not reused.
        await asyncio.to_thread(sessions.logout, request.cookies.get(sessions.SESSION_COOKIE, ""))
        response = JSONResponse({"next": next_or_home(target, HOME_BY_ROLE[user.role]),
                                 "name": user.name, "role": user.role},
                                headers={"Cache-Control": "no-store"})
        set_session_cookie(response, token, public_url)
        return response

    return login


def logout_route(public_url: str):
    async def logout(request: Request) -> Response:
        """Ends the server-side session and clears the cookie (the page then loads /login)."""
        if not from_this_site(request, public_url):
            return _cross_site()
        await asyncio.to_thread(sessions.logout, request.cookies.get(sessions.SESSION_COOKIE, ""))
        response = Response(status_code=204, headers={"Cache-Control": "no-store"})
        response.delete_cookie(sessions.SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                               secure=public_url.lower().startswith("https://"))
        return response

    return logout


def auth_routes(throttle: LoginThrottle, public_url: str = config.public_url,
                trusted_proxies: tuple[str, ...] = config.trusted_proxies) -> list[Route]:
    return [Route("/api/auth/login", login_route(throttle, public_url, trusted_proxies), methods=["POST"]),
            Route("/api/auth/logout", logout_route(public_url), methods=["POST"])]
