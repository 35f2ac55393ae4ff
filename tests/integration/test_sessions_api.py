"""Sign-in and sign-out over HTTP against the running app: the cookie's flags, one answer for an
unknown email and a wrong password, throttling that a stranger cannot turn into a lock-out,
cross-site posts refused, no CORS grant to a foreign origin, and sign-out revoking the session.

The test process reaches the server from 127.0.0.1, a trusted proxy by default
(PROCTOR_TRUSTED_PROXIES), so X-Forwarded-For plays the client addresses."""

import random
from http.cookies import SimpleCookie

import httpx
import pytest
from sqlmodel import select

from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.models import Role, User
from tests.support.factories import make_user

PASSWORD = "right-pass-1"


@pytest.fixture
def http(app_server):
    with httpx.Client(base_url=app_server.url, timeout=60, headers={"Origin": app_server.url}) as client:
        yield client


@pytest.fixture
def email(demo_db) -> str:
    with session_scope() as db:
        return make_user(db, role=Role.candidate, password=PASSWORD).email


def an_address() -> str:
    """A client address of the test's own (the server's throttle windows outlive a test)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def sign_in(http: httpx.Client, email: str, password: str, address: str | None = None,
            **extra) -> httpx.Response:
    headers = {"X-Forwarded-For": address or an_address()}
    return http.post("/api/auth/login", json={"email": email, "password": password, **extra},
                     headers=headers)


def session_cookie(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookie.load(header)
    return cookie


def test_sign_in_sets_an_httponly_strict_cookie_and_answers_the_next_page(http, email):
    answer = sign_in(http, email, PASSWORD, next="/candidate/exams/3")
    assert answer.status_code == 200, answer.text
    assert answer.json()["next"] == "/candidate/exams/3"
    morsel = session_cookie(answer)[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/"
    assert not morsel["secure"]  # the test server's public URL is not https
    assert sessions.user_for_token(morsel.value).email == email


def test_a_next_to_another_site_becomes_the_home_page(http, email):
    answer = sign_in(http, email, PASSWORD, next="/%5Cevil.com")
    assert answer.json()["next"] == "/candidate"


def test_unknown_email_and_wrong_password_answer_the_same(http, email):
    wrong = sign_in(http, email, "not-the-password")
    unknown = sign_in(http, f"nobody-{email}", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert wrong.headers["content-type"] == unknown.headers["content-type"] == "application/problem+json"
    assert wrong.json()["detail"] == "Wrong email or password."
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers
    assert set(wrong.headers) == set(unknown.headers)


def test_a_deactivated_account_answers_like_a_wrong_password_unless_it_was_right(http, email):
    with session_scope() as db:
        user = db.exec(select(User).where(User.email == email)).one()
        user.active = False
        db.add(user)
    wrong = sign_in(http, email, "not-the-password")
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "Wrong email or password.")
    right = sign_in(http, email, PASSWORD)
    assert (right.status_code, right.json()["code"]) == (403, "deactivated")
    assert "set-cookie" not in right.headers


def test_failures_are_throttled_per_address_without_locking_the_owner_out(http, email):
    attacker, owner = an_address(), an_address()
    for _ in range(10):
        assert sign_in(http, email, "guess-guess", attacker).status_code == 401
    throttled = sign_in(http, email, "guess-guess", attacker)
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "too_many_attempts"
    assert 0 < int(throttled.headers["retry-after"]) <= 15 * 60
    # Even the right password waits at that address...
    assert sign_in(http, email, PASSWORD, attacker).status_code == 429
    # ...while the owner, elsewhere, signs in.
    assert sign_in(http, email, PASSWORD, owner).status_code == 200


def test_one_address_guessing_many_accounts_is_throttled(http, demo_db):
    address = an_address()
    for n in range(30):
        assert sign_in(http, f"guess-{n}-{address}@example.com", "guess-guess", address).status_code == 401
    assert sign_in(http, f"one-more-{address}@example.com", "guess-guess", address).status_code == 429
    assert sign_in(http, f"one-more-{address}@example.com", "guess-guess").status_code == 401


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(http, email):
    """The right-most untrusted X-Forwarded-For entry counts: an address a client prepends
    itself changes nothing."""
    attacker = an_address()
    for _ in range(10):
        sign_in(http, email, "guess-guess", f"{an_address()}, {attacker}")
    assert sign_in(http, email, "guess-guess", attacker).status_code == 429


@pytest.mark.parametrize("origin", ["https://evil.example", "null", None])
def test_sign_in_from_another_site_is_refused(app_server, email, origin):
    headers = {"Origin": origin} if origin else {}
    with httpx.Client(base_url=app_server.url, timeout=60) as client:
        answer = client.post("/api/auth/login", json={"email": email, "password": PASSWORD},
                             headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (403, "cross_site")
        assert "set-cookie" not in answer.headers
        # A cross-site form can only send form encodings: refused even with a right Origin.
        form = client.post("/api/auth/login", data={"email": email, "password": PASSWORD},
                           headers={"Origin": app_server.url})
        assert form.status_code == 415 and "set-cookie" not in form.headers


def test_malformed_bodies_are_refused(http):
    assert http.post("/api/auth/login", content=b"[1]", headers={"Content-Type": "application/json"}
                     ).status_code == 400
    assert http.post("/api/auth/login", json={"email": 1, "password": "x"}).status_code == 400
    assert http.post("/api/auth/login", content=b"{" + b" " * 9000 + b"}",
                     headers={"Content-Type": "application/json"}).status_code == 413


def test_sign_out_revokes_the_session_and_clears_the_cookie(http, app_server, email):
    token = session_cookie(sign_in(http, email, PASSWORD))[SESSION_COOKIE].value
    with httpx.Client(base_url=app_server.url, timeout=60, cookies={SESSION_COOKIE: token}) as browser:
        refused = browser.post("/api/auth/logout", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403
        assert sessions.user_for_token(token) is not None
        out = browser.post("/api/auth/logout", headers={"Origin": app_server.url})
    assert out.status_code == 204
    cleared = session_cookie(out)[SESSION_COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert sessions.user_for_token(token) is None


def test_signing_in_again_ends_the_session_the_browser_had(http, email):
    first = session_cookie(sign_in(http, email, PASSWORD))[SESSION_COOKIE].value
    http.cookies.set(SESSION_COOKIE, first)
    second = session_cookie(sign_in(http, email, PASSWORD))[SESSION_COOKIE].value
    assert second != first
    assert sessions.user_for_token(first) is None and sessions.user_for_token(second) is not None


def test_a_foreign_origin_gets_no_cors_grant(http, app_server, email):
    token = session_cookie(sign_in(http, email, PASSWORD))[SESSION_COOKIE].value
    foreign = {"Origin": "https://evil.example"}
    with httpx.Client(base_url=app_server.url, timeout=60, cookies={SESSION_COOKIE: token}) as client:
        simple = client.get("/api/time", headers=foreign)
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers
        preflight = client.options("/api/live/attempts/1/streams/camera/view", headers={
            **foreign, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 400
        page = client.get("/login", headers=foreign)
        assert "access-control-allow-origin" not in page.headers
