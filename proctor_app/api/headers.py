"""Security headers on every HTTP response of the app (pages, static files, /api), as an ASGI
middleware around what api_transformer built (the /api routes with Reflex mounted below them).

The Content-Security-Policy fits what Reflex's built pages need: React Router's hydration is an
inline <script>, Emotion/Radix set inline styles, and Reflex's client evaluates rx.call_script
code with eval(), so scripts allow 'unsafe-inline' and 'unsafe-eval' (from this origin only);
the state socket is same-origin (ws/wss match 'self'); recordings and previews play from this
origin or blob: URLs. What it still stops: framing (clickjacking), plugins, <base> hijacking,
forms and connections to other origins, scripts and media from other hosts.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(public_url: str) -> list[tuple[bytes, bytes]]:
    """The headers every response gets; HSTS only when the site is served over https."""
    headers = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if public_url.lower().startswith("https://"):
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


class SecurityHeaders:
    """Adds security_headers() to every HTTP response (a header a route set itself is kept)."""

    def __init__(self, app: ASGIApp, public_url: str):
        self.app = app
        self.headers = security_headers(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in self.headers if name not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(public_url: str):
    """An api_transformer step: wraps the app built so far in SecurityHeaders."""
    return lambda app: SecurityHeaders(app, public_url)
