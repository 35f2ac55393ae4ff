"""/admin/organisations and the users page's organisation column in Chromium: the install's admin
creates an organisation, renames it, sets its allowed origins (a wrong one is refused), creates a
user in it and moves the user back; an organisation's admin gets /forbidden and cannot choose."""

import uuid

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import DEFAULT_ORGANISATION_ID, Organisation, User
from tests.support.pages import sign_in

pytestmark = pytest.mark.browser


def test_install_admin_creates_and_edits_an_organisation_and_its_users(page):
    slug = f"college-{uuid.uuid4().hex[:6]}"
    sign_in(page, "admin@example.com")
    page.goto("/admin/organisations")
    page.fill("#new-organisation-slug", slug)
    page.fill("#new-organisation-name", "A College")
    page.click("#create-organisation")
    expect(page.locator("#organisations-notice")).to_have_text(f"Created {slug}.")
    with session_scope() as db:
        organisation_id = db.exec(select(Organisation.id).where(Organisation.slug == slug)).one()
    expect(page.locator(f"#organisation-users-{organisation_id}")).to_have_text("0")

    page.fill(f"#organisation-name-{organisation_id}", "The College")
    page.fill(f"#organisation-origins-{organisation_id}", "https://exams.college.example/path")
    page.click(f"#organisation-save-{organisation_id}")
    expect(page.locator("#organisations-error")).to_contain_text("Not an origin")
    page.fill(f"#organisation-origins-{organisation_id}", "https://Exams.College.example\nhttp://localhost:9000")
    page.click(f"#organisation-save-{organisation_id}")
    expect(page.locator("#organisations-notice")).to_have_text(f"Saved {slug}.")
    with session_scope() as db:
        organisation = db.get(Organisation, organisation_id)
        assert organisation.name == "The College"
        assert organisation.allowed_origins == ["https://exams.college.example", "http://localhost:9000"]

    email = f"teacher-{uuid.uuid4().hex[:6]}@college.example"
    page.goto("/admin/users")
    page.fill("#new-user-email", email)
    page.fill("#new-user-name", "Terry Teacher")
    page.select_option("#new-user-role", "proctor")
    page.select_option("#new-user-organisation", str(organisation_id))
    page.fill("#new-user-password", "teacher-pass-1")
    page.click("#create-user")
    expect(page.locator("#users-notice")).to_contain_text(email)
    with session_scope() as db:
        user = db.exec(select(User).where(User.email == email)).one()
        assert user.organisation_id == organisation_id and not user.is_install_admin
    page.select_option(f"#organisation-{user.id}", str(DEFAULT_ORGANISATION_ID))
    expect(page.locator("#users-notice")).to_contain_text("their sessions and assignments ended")
    with session_scope() as db:
        assert db.get(User, user.id).organisation_id == DEFAULT_ORGANISATION_ID


def test_organisation_admin_cannot_choose_organisations(page):
    sign_in(page, "admin@northwind.example")
    page.goto("/admin/users?q=dave@northwind.example")
    expect(page.locator("#users-table")).to_contain_text("dave@northwind.example")
    expect(page.locator("#new-user-organisation")).to_have_count(0)
    expect(page.locator("#new-user-install-admin")).to_have_count(0)
    expect(page.locator("select[id^=organisation-]")).to_have_count(0)
    page.goto("/admin/organisations")
    page.wait_for_url("**/forbidden")
