"""What PROCTOR_PUBLIC_URL and PROCTOR_CORS_ORIGINS change, on the app's own routes in this
process (the session's server runs with neither): the Secure cookie behind https, and the CORS
grant Reflex's middleware gives a configured origin (rxconfig.py read in a process of its own,
with the variables set)."""

import json
import os
import subprocess
import sys
from http.cookies import SimpleCookie
from types import SimpleNamespace

import httpx
import pytest
import reflex.app
from starlette.applications import Starlette

from proctor_app.api import clock
from proctor_app.api.auth import auth_routes
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.auth.throttle import LoginThrottle
from proctor_app.db import session_scope
from proctor_app.models import Role
from tests.support.factories import make_user
from tests.support.server import ROOT

PUBLIC = "https://proctor.example.org"
SDK = "https://sdk.example.org"
PASSWORD = "right-pass-1"


async def test_behind_https_the_session_cookie_is_secure(demo_db):
    with session_scope() as db:
        email = make_user(db, role=Role.proctor, password=PASSWORD).email
    app = Starlette(routes=auth_routes(LoginThrottle(), public_url=PUBLIC, trusted_proxies=()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as client:
        plain_http = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD},
                                       headers={"Origin": "http://proctor.example.org"})
        assert plain_http.status_code == 403
        answer = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD},
                                   headers={"Origin": PUBLIC})
        assert answer.status_code == 200, answer.text
        cookie = SimpleCookie(answer.headers["set-cookie"])[SESSION_COOKIE]
        assert cookie["secure"] is True and cookie["httponly"] is True
        out = await client.post("/api/auth/logout", headers={"Origin": PUBLIC})
        assert SimpleCookie(out.headers["set-cookie"])[SESSION_COOKIE]["secure"] is True


def _rxconfig_origins(env: dict[str, str]) -> list[str]:
    code = "import json, rxconfig; print(json.dumps(list(rxconfig.config.cors_allowed_origins)))"
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("PROCTOR_CORS_ORIGINS", "PROCTOR_PUBLIC_URL")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True, env={**inherited, **env})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def cors_app(monkeypatch):
    """/api/time behind the CORS middleware exactly as Reflex adds it, with rxconfig's origins."""
    origins = _rxconfig_origins({"PROCTOR_CORS_ORIGINS": f"{SDK}, https://lms.example.org",
                                 "PROCTOR_PUBLIC_URL": PUBLIC})
    assert origins == ["https://lms.example.org", PUBLIC, SDK]
    assert _rxconfig_origins({}) == []
    monkeypatch.setattr(reflex.app, "get_config", lambda: SimpleNamespace(cors_allowed_origins=origins))
    api = Starlette(routes=clock.routes)
    reflex.app.App._add_cors(api)
    return api


async def test_a_configured_origin_gets_a_cors_grant_and_a_foreign_one_none(cors_app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cors_app), base_url=PUBLIC) as client:
        granted = await client.get("/api/time", headers={"Origin": SDK, "Cookie": "a=b"})
        assert granted.headers["access-control-allow-origin"] == SDK
        assert granted.headers["access-control-allow-credentials"] == "true"
        preflight = await client.options("/api/time", headers={
            "Origin": SDK, "Access-Control-Request-Method": "GET"})
        assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (200, SDK)
        foreign = await client.get("/api/time", headers={"Origin": "https://evil.example", "Cookie": "a=b"})
        assert "access-control-allow-origin" not in foreign.headers
        refused = await client.options("/api/time", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
