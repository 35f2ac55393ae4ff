"""/admin/api-keys in Chromium: a key created on the page works against /api/v1 until revoked;
rotation shows a new key; an organisation's own admin sees only its keys; others are refused. And
API sessions carry their organisation and external id on the attempts list and video page."""

import uuid

import httpx
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import ApiKey, AttemptStatus, Organisation, Role, utcnow
from proctor_app.services import organisations
from tests.support.api import make_caller, wrap_attempt
from tests.support.factories import make_attempt, make_exam, make_user
from tests.support.pages import sign_in

pytestmark = pytest.mark.browser


def _works(app_server, key: str) -> int:
    return httpx.get(f"{app_server.url}/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}).status_code


def test_install_admin_creates_rotates_and_revokes_a_key(page, app_server):
    slug = f"org-{uuid.uuid4().hex[:8]}"
    sign_in(page, "admin@example.com")
    page.goto("/admin/api-keys")
    page.fill("#new-key-organisation", slug)
    page.fill("#new-key-label", "LMS production")
    page.uncheck("#new-key-scope-recordings-delete")
    page.click("#create-key")
    expect(page.locator("#keys-notice")).to_contain_text(f"for {slug}")
    key = page.locator("#new-key").inner_text()
    assert _works(app_server, key) == 200
    with session_scope() as db:
        row = db.exec(select(ApiKey).where(ApiKey.prefix == key[:15])).one()
        assert "recordings:delete" not in row.scopes and row.key_hash != key
    expect(page.locator(f"#key-{row.id}")).to_contain_text("LMS production")

    page.click(f"#rotate-{row.id}")
    expect(page.locator("#keys-notice")).to_contain_text("New key")
    rotated = page.locator("#new-key").inner_text()
    assert rotated != key and _works(app_server, rotated) == 200 and _works(app_server, key) == 200
    expect(page.locator(f"#key-state-{row.id}")).to_have_text("rotated")

    page.click(f"#revoke-{row.id}")
    expect(page.locator(f"#key-state-{row.id}")).to_have_text("revoked")
    expect(page.locator("#new-key")).to_have_count(0)
    assert _works(app_server, key) == 401 and _works(app_server, rotated) == 200


def test_organisation_admin_sees_only_its_keys_and_others_are_refused(page, browser, app_server):
    with session_scope() as db:
        mine = organisations.ensure_organisation(db, f"own-{uuid.uuid4().hex[:8]}")
        admin = make_user(db, role=Role.admin, organisation_id=mine.id, password="org-admin-pass-1")
        email = admin.email
    sign_in(page, email, "org-admin-pass-1")
    page.goto("/admin/api-keys")
    expect(page.locator("#create-key")).to_be_visible()
    expect(page.locator("#new-key-organisation")).to_have_count(0)
    page.fill("#new-key-label", "own key")
    page.click("#create-key")
    expect(page.locator("#keys-notice")).to_contain_text(f"for {mine.slug}")
    rows = page.locator("#keys-table tbody tr")
    expect(rows).to_have_count(1)

    proctor_context = browser.new_context(base_url=app_server.url)
    try:
        proctor = proctor_context.new_page()
        sign_in(proctor, "proctor@example.com")
        proctor.goto("/admin/api-keys")
        proctor.wait_for_url("**/forbidden")
    finally:
        proctor_context.close()


def test_api_sessions_are_marked_with_organisation_and_external_id(page, app_server):
    with session_scope() as db:
        caller = make_caller(db, slug=f"marks-{uuid.uuid4().hex[:8]}")
        exam = make_exam(db)
        attempt = make_attempt(db, exam, make_user(db), status=AttemptStatus.submitted,
                               started_at=utcnow(), ended_at=utcnow(), deadline_at=utcnow())
        session = wrap_attempt(db, caller.organisation_id, attempt.id)
        organisation = db.get(Organisation, caller.organisation_id)
    mark = f"{organisation.name} · {session.external_id}"
    sign_in(page, "admin@example.com")
    page.goto("/attempts")
    expect(page.locator(".attempt-origin").filter(has_text=mark)).to_have_count(1)
    page.goto(f"/attempts/{attempt.id}/video")
    expect(page.locator("#attempt-origin")).to_have_text(mark)
