"""The login page's next= check: only paths of this site pass."""

import pytest

from proctor_app.auth.redirects import is_same_site_path, next_or_home

HOSTILE = [
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\/evil.com",
    "\\\\evil.com",
    "/%5Cevil.com",
    "/%5cevil.com",
    "/%255Cevil.com",
    "/%2F%2Fevil.com",
    "/%2f/evil.com",
    "/%252F%252Fevil.com",
    "https://evil.com",
    "http:/evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.com",
    "/\n/evil.com",
    "/%09/evil.com",
    "/%0d%0a/evil.com",
    "/\x00",
    "evil.com",
    " /attempts",
    "",
    None,
    "/attempts/../\\evil.com",
    "/" + "a" * 3000,
]

SAME_SITE = ["/", "/attempts", "/attempts/12/video", "/attempts?exam=3&status=done",
             "/admin/exams/5#top", "/candidate/exams/1?x=%20y"]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_next_falls_back_to_home(target):
    assert not is_same_site_path(target)
    assert next_or_home(target, "/attempts") == "/attempts"


@pytest.mark.parametrize("target", SAME_SITE)
def test_same_site_paths_pass(target):
    assert is_same_site_path(target)
    assert next_or_home(target, "/candidate") == target
