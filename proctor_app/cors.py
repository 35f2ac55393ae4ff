"""Which other sites' pages may call the app with the user's cookie (CORS), for rxconfig.py.

Reflex wraps pages, the state socket and /api in Starlette's CORSMiddleware with the
`cors_allowed_origins` this returns: an origin not listed gets no Access-Control-Allow-Origin
(and its preflights a 400). Plain module (no app imports at load): rxconfig.py loads it first.

Besides the install-wide list, the sites organisations allow the embeddable recorder on
(Organisation.allowed_origins) are granted too, so its uploads' preflights pass; what such a page
may do is still decided by the session and upload tokens, and per organisation by api/sdk.py.
"""

import threading
import time
from urllib.parse import urlsplit

# How long the organisations' origins are kept before they are read again (a change takes that long).
ORGANISATION_ORIGINS_TTL_S = 5.0


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case, as browsers send it in Origin."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class _OrganisationOrigins:
    """All organisations' allowed origins, read from the database at most every TTL seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._origins: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def __call__(self) -> frozenset[str]:
        with self._lock:
            if time.monotonic() - self._read_at >= ORGANISATION_ORIGINS_TTL_S:
                from proctor_app.services.organisations import all_allowed_origins  # the app, once it runs

                self._origins, self._read_at = all_allowed_origins(), time.monotonic()
            return self._origins


organisation_origins = _OrganisationOrigins()


class AllowedOrigins(list):
    """The configured origins (what iterating gives, e.g. the state socket's list), and for the
    CORS middleware's `origin in ...` also the organisations' SDK origins."""

    def __contains__(self, origin) -> bool:
        if list.__contains__(self, origin):
            return True
        return origin != "*" and isinstance(origin, str) and origin_of(origin) == origin \
            and origin in organisation_origins()


def cors_allowed_origins(configured: tuple[str, ...], public_url: str) -> AllowedOrigins:
    """The origins granted CORS: PROCTOR_CORS_ORIGINS, plus, once there is any, the site's own
    (PROCTOR_PUBLIC_URL): with a list, the state socket accepts only the origins on it.
    Empty: no grant to anyone (the socket then checks no origin; the SameSite session cookie
    keeps other sites' sockets signed out)."""
    origins = [origin for origin in map(origin_of, configured) if origin]
    if origins and public_url:
        origins.append(origin_of(public_url))
    return AllowedOrigins(sorted(set(origins)))
