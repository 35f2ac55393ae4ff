import re

import pytest
from playwright.sync_api import expect

from proctor_app.auth.sessions import SESSION_COOKIE, user_for_token
from proctor_app.demo import DEMO_PASSWORD
from tests.support.pages import login

pytestmark = pytest.mark.browser


def test_wrong_password_shows_error_and_right_one_signs_in(page):
    page.goto("/")
    page.wait_for_url("**/login**")
    page.fill("#email", "supervisor@example.com")
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    assert "Wrong email or password" in page.text_content("#login-error")
    login(page, "supervisor@example.com")
    assert "Sam Supervisor" in page.text_content("#signed-in-as")


def test_next_with_encoded_backslash_stays_on_the_site(page, app_server):
    page.goto("/login?next=/%5Cevil.com")
    page.fill("#email", "supervisor@example.com")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/attempts")
    assert page.url.startswith(app_server.url)
    assert "evil.com" not in page.url


def test_pages_run_under_the_content_security_policy(page):
    """Nothing the pages load or run is refused by the CSP (Chromium logs every refusal)."""
    refused = []
    page.on("console", lambda msg: refused.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    login(page, "admin@example.com")
    for path in ("/admin/users", "/admin/exams", "/admin/settings", "/attempts", "/proctor"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert page.evaluate("document.title")
    assert refused == []


def test_the_session_cookie_is_httponly_and_sign_out_ends_it(page, context):
    login(page, "proctor@example.com")
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # No script of the page can read it.
    assert SESSION_COOKIE not in page.evaluate("document.cookie")
    token = cookie["value"]
    assert user_for_token(token) is not None
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login/?$"))
    assert user_for_token(token) is None
    assert all(c["name"] != SESSION_COOKIE for c in context.cookies())
    page.goto("/proctor")
    page.wait_for_url(re.compile(r"/login\?next=/proctor/?$"))


def test_too_many_failures_show_when_to_try_again(page):
    """The throttle's 429 reaches the form as its message (127.0.0.1 is the client here: an
    unknown email of its own keeps the other tests' sign-ins clear of it)."""
    page.goto("/login")
    page.fill("#email", "nobody-throttled@example.com")
    page.fill("#password", "not-the-password")
    for _ in range(10):
        with page.expect_response("**/api/auth/login") as answer:
            page.click("#login-submit")
        assert answer.value.status == 401
    with page.expect_response("**/api/auth/login") as answer:
        page.click("#login-submit")
    assert answer.value.status == 429
    expect(page.locator("#login-error")).to_contain_text("Too many failed sign-ins")
