"""API key authentication, around the whole /api/v1 app: the key is checked, and the route's
scope and the body's type, from the headers alone, before any byte of a body is read."""

import anyio.to_thread
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from proctor_app.api.v1.problems import problem_response
from proctor_app.services.api_keys import checked_principal, principal_for_key

SCOPE_EXTRA = "x-required-scope"
# Where the request's KeyPrincipal is kept in the ASGI scope.
PRINCIPAL = "proctor.api_principal"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api"'}


def required_scope(scope: str) -> dict:
    """A route's openapi_extra naming the key scope it needs (also shown in the document)."""
    return {SCOPE_EXTRA: scope}


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key of `Authorization: Bearer <key>`, else of `X-API-TOKEN: <key>`."""
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = headers.get(b"x-api-token", b"").decode("latin-1").strip()
    return token or None


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.decode("latin-1").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, routes) -> None:
        self.app, self.routes = app, routes

    def _route(self, scope: Scope):
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route
        return None  # the app answers 404 or 405 itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        needed = ((getattr(route, "openapi_extra", None) or {}).get(SCOPE_EXTRA)) if route else None
        if needed is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = presented_key(headers)
        # A key checked moments ago needs no database round trip, nor a worker thread.
        principal = (checked_principal(raw) or await anyio.to_thread.run_sync(principal_for_key, raw)) if raw else None
        if principal is None:
            detail = "An API key is required." if raw is None else "The API key is invalid, revoked or expired."
            response = problem_response(401, detail, headers=CHALLENGE)
        elif needed not in principal.scopes:
            response = problem_response(403, f"The API key lacks the scope {needed}.")
        elif getattr(route, "body_field", None) is not None and not _is_json(headers.get(b"content-type", b"")):
            response = problem_response(415, "Send the body as application/json.")
        else:
            scope[PRINCIPAL] = principal
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
