import pytest

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
