"""Fixtures of the integration tests that upload to the running app."""

import httpx
import pytest

from proctor_app.db import session_scope
from proctor_app.services import uploads
from tests.support.uploads import new_attempt


@pytest.fixture
def grant(app_server) -> uploads.UploadGrant:
    """An upload token for a started attempt of the test's own."""
    with session_scope() as db:
        return uploads.issue_upload_token(db, new_attempt(db))


@pytest.fixture
def client(app_server):
    with httpx.Client(base_url=app_server.url, timeout=60) as http:
        yield http
