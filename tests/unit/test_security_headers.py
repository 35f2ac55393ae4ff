"""The security headers middleware on a bare ASGI app: every response gets them, HSTS only for
an https public URL, and a header a route set itself is kept."""

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from proctor_app.api.headers import SecurityHeaders


def _app(public_url: str):
    async def plain(request):
        return PlainTextResponse("hi")

    async def own_referrer(request):
        return PlainTextResponse("hi", headers={"Referrer-Policy": "no-referrer"})

    return SecurityHeaders(Starlette(routes=[Route("/", plain), Route("/own", own_referrer)]), public_url)


async def _get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path)


@pytest.mark.parametrize("public_url, hsts", [("", False), ("http://proctor.example.edu", False),
                                              ("https://proctor.example.edu", True),
                                              ("HTTPS://proctor.example.edu", True)])
async def test_every_response_has_the_headers_and_hsts_only_over_https(public_url, hsts):
    app = _app(public_url)
    for path in ("/", "/missing"):
        r = await _get(app, path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert ("strict-transport-security" in r.headers) == hsts


async def test_a_routes_own_header_is_kept_once():
    r = await _get(_app(""), "/own")
    assert r.headers.get_list("referrer-policy") == ["no-referrer"]
