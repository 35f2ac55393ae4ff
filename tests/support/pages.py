"""Driving the app's pages in Chromium (Playwright): which Chromium, and signing in."""

import os

from proctor_app.demo import DEMO_PASSWORD

CHROMIUM = os.environ.get("PROCTOR_CHROMIUM", "/usr/bin/chromium")


def login(page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the login form and wait until the app has left the login page."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login" not in url)
