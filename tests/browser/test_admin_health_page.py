"""The Health page in Chromium against the real app: charts of the stored health samples and the
alerts they raise, for an admin; refused to other roles."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete

from proctor_app.db import session_scope
from proctor_app.models import HealthSample, utcnow
from tests.support.pages import sign_in

pytestmark = pytest.mark.browser

GB = 10**9


@pytest.fixture
def troubled_samples(app_server):
    """Half an hour of samples, the last ten with failing processing and a nearly full disk. They
    end a few minutes ahead, so the server's own sampler (once a minute) adds none meanwhile."""
    end = utcnow() + timedelta(minutes=3)
    with session_scope() as db:
        rows = [HealthSample(taken_at=end - timedelta(minutes=29 - i), jobs_done=40,
                             jobs_failed=10 if i >= 20 else 0, processing_p95_s=30.0 + i,
                             queue_depth=1, oldest_wait_s=30.0 * i, storage_bytes=(100 + i) * GB,
                             disk_free_bytes=(50 if i >= 20 else 400) * GB, disk_total_bytes=1000 * GB)
                for i in range(30)]
        db.add_all(rows)
        db.flush()
        ids = [row.id for row in rows]
    yield
    with session_scope() as db:
        db.exec(delete(HealthSample).where(HealthSample.id.in_(ids)))


def test_admin_sees_charts_and_alerts(page, troubled_samples):
    sign_in(page, "admin@example.com")
    page.goto("/admin/health")
    expect(page.locator("#alert-failure_rate")).to_contain_text("10 of 50 recordings failed processing")
    expect(page.locator("#alert-disk_low")).to_contain_text("5% free")
    expect(page.locator("#alert-job_waiting")).to_contain_text("waited 14 min")
    for chart in ("success", "processing", "queue", "storage", "disk"):
        expect(page.locator(f"#chart-{chart} .recharts-line path.recharts-curve")).to_have_count(1)
    # The time axis names the samples' minutes.
    expect(page.locator("#chart-storage svg.recharts-surface").first).to_contain_text(re.compile(r"\d\d:\d\d"))
    page.click("#health-span")
    page.get_by_role("option", name="7 days").click()
    expect(page.locator("#chart-disk svg.recharts-surface").first).to_contain_text(re.compile(r"\d\d-\d\d \d\d:\d\d"))


# An organisation's admin too: the health page is the install's.
@pytest.mark.parametrize("email", ["proctor@example.com", "supervisor@example.com", "admin@northwind.example"])
def test_other_roles_are_refused(page, email, troubled_samples):
    sign_in(page, email)
    page.goto("/admin/health")
    page.wait_for_url("**/forbidden")
    expect(page.locator("#alerts")).to_have_count(0)
    expect(page.get_by_text("recordings failed processing")).to_have_count(0)
