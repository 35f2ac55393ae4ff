"""Driving the app's pages in Chromium (Playwright): which Chromium, and signing in."""

import os
from urllib.parse import urlsplit

from proctor_app.demo import DEMO_PASSWORD

CHROMIUM = os.environ.get("PROCTOR_CHROMIUM", "/usr/bin/chromium")


def login(page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the login form and wait until the app has left the login page."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login" not in url)


def sign_in(page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign the page's context in by the post the login form makes (`POST /api/auth/login`),
    without loading the form: for tests of what comes after signing in, which then open their
    page (the form itself is tested with `login`, e.g. in test_login.py). Saves two page loads."""
    # The site's own Origin, as the route asks (Playwright does not expose the context's base URL).
    site = urlsplit(page.request.get("/ping").url)
    response = page.request.post("/api/auth/login", data={"email": email, "password": password},
                                 headers={"Origin": f"{site.scheme}://{site.netloc}"})
    assert response.ok, f"signing in {email}: {response.status} {response.text()}"
