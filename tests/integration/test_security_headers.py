"""Security headers on the running app's responses: pages, static files, Reflex's own routes and
/api (answers and errors alike). HSTS stays off: the test server's public URL is not https."""

import re

import httpx
import pytest


@pytest.fixture
def client(app_server):
    with httpx.Client(base_url=app_server.url, timeout=30) as c:
        yield c


def _check(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers


def test_pages_and_their_scripts_carry_the_headers(client):
    redirect = client.get("/login")
    _check(redirect)
    page = client.get("/login", follow_redirects=True)
    assert page.status_code == 200
    _check(page)
    _check(client.get("/", follow_redirects=True))
    _check(client.get("/attempts", follow_redirects=True))
    _check(client.get("/ping"))
    script = re.search(r'src="(/[^"]+\.js)"', page.text) or re.search(r'href="(/[^"]+\.js)"', page.text)
    assert script, page.text[:2000]
    asset = client.get(script.group(1))
    assert asset.status_code == 200
    _check(asset)


def test_api_answers_and_errors_carry_the_headers(client):
    ok = client.get("/api/time")
    assert ok.status_code == 200
    _check(ok)
    refused = client.put("/api/attempts/1/streams/camera/segments/0/chunks/0", content=b"x")
    assert refused.status_code in (400, 401, 403)
    _check(refused)
    missing = client.get("/api/no-such-route")
    assert missing.status_code == 404
    _check(missing)
