import pytest

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
