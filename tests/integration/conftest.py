"""Fixtures of the integration tests that upload to the running app."""

import httpx
import pytest

from proctor_app.db import session_scope
from proctor_app.services import uploads
from proctor_app.services.settings import update_settings
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


@pytest.fixture
def keep_raw_chunks():
    """Raw chunks kept after processing (the admin setting), so an attempt can be processed again."""
    with session_scope() as db:
        update_settings(db, {"keep_raw_chunks": True}, None)
    yield
    with session_scope() as db:
        update_settings(db, {"keep_raw_chunks": False}, None)
