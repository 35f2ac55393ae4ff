"""Which other sites' pages may call the app with the user's cookie (CORS), for rxconfig.py.

Reflex wraps pages, the state socket and /api in Starlette's CORSMiddleware with the
`cors_allowed_origins` this returns: an origin not listed gets no Access-Control-Allow-Origin
(and its preflights a 400). Plain module (no app imports): rxconfig.py loads it first.
"""

from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case, as browsers send it in Origin."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def cors_allowed_origins(configured: tuple[str, ...], public_url: str) -> list[str]:
    """The origins granted CORS: PROCTOR_CORS_ORIGINS, plus, once there is any, the site's own
    (PROCTOR_PUBLIC_URL): with a list, the state socket accepts only the origins on it.
    Empty: no grant to anyone (the socket then checks no origin; the SameSite session cookie
    keeps other sites' sockets signed out)."""
    origins = [origin for origin in map(origin_of, configured) if origin]
    if origins and public_url:
        origins.append(origin_of(public_url))
    return sorted(set(origins))
