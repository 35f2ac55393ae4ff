"""/admin/webhooks in Chromium: the delivery log of a failing receiver, redelivery with the same
webhook-id once it answers; the install admin sets the operator.alert endpoint; an organisation's
own admin sees only its endpoints."""

import uuid

import pytest
from playwright.sync_api import expect

from proctor_app.db import session_scope
from proctor_app.models import Role
from proctor_app.services import organisations
from proctor_app.services.webhooks import admin, endpoints
from proctor_app.services.webhooks.outbox import record
from tests.support.api import make_caller
from tests.support.factories import make_user
from tests.support.pages import sign_in
from tests.support.polling import wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def test_delivery_log_and_redelivery(page, app_server, receiver):
    with session_scope() as db:
        organisation_id = make_caller(db).organisation_id
        endpoint = endpoints.create_endpoint(db, organisation_id, receiver.url("/log"), ["*"])
        receiver.secrets["/log"] = endpoint.secret
        receiver.script["/log"] = [410]  # the first answer disables it: one try in the log
        webhook_id = record(db, "media.expiring", organisation_id, {"n": 1}).public_id
    wait_for(lambda: receiver.received, timeout=30, what="the first try")
    sign_in(page, "admin@example.com")
    page.goto("/admin/webhooks")
    expect(page.locator(f"#endpoint-{endpoint.public_id}")).to_contain_text("410 Gone")
    with session_scope() as db:
        delivery_id = admin.delivery_log(db, organisation_id)[0].delivery_id
        endpoints.update_endpoint(db, endpoints.endpoint_of(db, organisation_id, endpoint.public_id), enabled=True)
    row = page.locator(f"#try-{delivery_id}-1")
    expect(row).to_contain_text("media.expiring")
    expect(row).to_contain_text("410")
    expect(row).to_contain_text("no thanks")
    page.click(f"#redeliver-{delivery_id}-1")
    expect(page.locator("#webhooks-notice")).to_contain_text("same webhook-id")
    wait_for(lambda: receiver.acknowledged("/log"), timeout=30, what="the redelivery")
    assert [r.webhook_id for r in receiver.received] == [webhook_id, webhook_id]

    def logged_twice() -> bool:
        with session_scope() as db:
            return len(admin.delivery_log(db, organisation_id)) == 2

    wait_for(logged_twice, timeout=10, what="the redelivery logged")
    page.click("#refresh-log")
    expect(page.locator(f"#try-{delivery_id}-2")).to_contain_text("200")


def test_install_admin_sets_the_operator_endpoint_org_admin_sees_only_its_own(page, browser, app_server, receiver):
    with session_scope() as db:  # earlier tests may have set one: its secret is shown only when new
        admin.set_install_endpoint(db, "")
    sign_in(page, "admin@example.com")
    page.goto("/admin/webhooks")
    page.fill("#install-url", receiver.url("/ops"))
    page.click("#save-install-url")
    expect(page.locator("#webhooks-notice")).to_have_text("Saved.")
    secret = page.locator("#install-secret").inner_text()
    with session_scope() as db:
        own = admin.install_endpoint(db)
        assert own.url == receiver.url("/ops") and own.secret == secret and own.events == ["operator.alert"]
        mine = organisations.ensure_organisation(db, f"hooks-{uuid.uuid4().hex[:8]}")
        other = make_caller(db).organisation_id
        theirs = endpoints.create_endpoint(db, other, receiver.url("/theirs"), ["*"]).public_id
        ours = endpoints.create_endpoint(db, mine.id, receiver.url("/ours"), ["*"]).public_id
        email = make_user(db, role=Role.admin, organisation_id=mine.id, password="org-admin-pass-1").email
    page.fill("#install-url", "")
    page.click("#save-install-url")
    expect(page.locator("#webhooks-notice")).to_have_text("Removed.")

    context = browser.new_context(base_url=app_server.url)
    try:
        own_page = context.new_page()
        sign_in(own_page, email, "org-admin-pass-1")
        own_page.goto("/admin/webhooks")
        expect(own_page.locator(f"#endpoint-{ours}")).to_be_visible()
        expect(own_page.locator(f"#endpoint-{theirs}")).to_have_count(0)
        expect(own_page.locator("#install-url")).to_have_count(0)
    finally:
        context.close()
