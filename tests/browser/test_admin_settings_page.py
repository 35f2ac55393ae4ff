"""The admin settings page in Chromium against the real app: saving settings (valid and not),
the storage overview, a dry run and a real retention run, and who may open it."""

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.storage import storage
from proctor_app.models import (
    Attempt,
    AuditLog,
    Chunk,
    Exam,
    Job,
    ProctoringEvent,
    Recording,
    RecordingStatus,
    Segment,
    Snapshot,
    User,
    utcnow,
)
from proctor_app.services.settings import get_settings, update_settings
from tests.support.factories import user_id
from tests.support.pages import sign_in
from tests.support.retention_media import make_media_attempt

pytestmark = pytest.mark.browser


@pytest.fixture
def restore_settings(app_server):
    with session_scope() as db:
        before = get_settings(db)
    yield
    with session_scope() as db:
        update_settings(db, before, None)


def _open_settings(page) -> None:
    sign_in(page, "admin@example.com")
    page.goto("/admin/settings")
    expect(page.locator("#setting-retention_days")).to_be_visible()


def test_admin_saves_a_valid_and_an_invalid_value(page, restore_settings):
    _open_settings(page)
    admin_id = user_id("admin@example.com")
    expect(page.locator("#setting-retention_days")).to_have_value("30")

    page.fill("#setting-retention_days", "0")
    page.fill("#setting-chunk_interval_s", "three")
    page.click("#save-settings")
    expect(page.locator("#error-retention_days")).to_have_text("Retention (days) must be between 1 and 3650.")
    expect(page.locator("#error-chunk_interval_s")).to_have_text(
        "Chunk interval (seconds) must be a whole number.")
    expect(page.locator("#settings-error")).to_contain_text("Nothing was saved")
    # What was typed stays, to be corrected; nothing reached the database.
    expect(page.locator("#setting-retention_days")).to_have_value("0")
    with session_scope() as db:
        assert get_settings(db)["retention_days"] == 30

    page.fill("#setting-retention_days", "45")
    page.fill("#setting-chunk_interval_s", "3")
    page.click("#setting-keep_raw_chunks")  # a switch: off -> on
    page.fill("#setting-retention_run_at", "04:15")
    page.click("#save-settings")
    expect(page.locator("#settings-notice")).to_have_text(
        "Saved: Retention (days), Daily retention run (UTC), Keep raw chunks after processing.")
    expect(page.locator("#error-retention_days")).to_have_count(0)
    with session_scope() as db:
        saved = get_settings(db)
        logged = db.exec(select(AuditLog).where(AuditLog.action == "setting_changed",
                                                AuditLog.user_id == admin_id)
                         .order_by(AuditLog.id.desc()).limit(3)).all()
    assert (saved["retention_days"], saved["retention_run_at"], saved["keep_raw_chunks"]) == (
        45, "04:15", True)
    assert {(e.target, e.data["new"]) for e in logged} == {
        ("retention_days", 45), ("retention_run_at", "04:15"), ("keep_raw_chunks", True)}
    # The form shows what is stored after a reload.
    page.reload()
    expect(page.locator("#setting-retention_days")).to_have_value("45")
    expect(page.locator("#setting-keep_raw_chunks")).to_have_attribute("aria-checked", "true")


def _remove_attempt(attempt_id: int) -> None:
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        recordings = [r.id for r in db.exec(select(Recording).where(Recording.attempt_id == attempt_id))]
        segments = [s.id for s in db.exec(select(Segment).where(Segment.recording_id.in_(recordings)))]
        db.execute(delete(Chunk).where(Chunk.segment_id.in_(segments)))
        db.execute(delete(Segment).where(Segment.id.in_(segments)))
        for table in (Recording, Snapshot, Job, ProctoringEvent):
            db.execute(delete(table).where(table.attempt_id == attempt_id))
        db.execute(delete(Attempt).where(Attempt.id == attempt_id))
        db.execute(delete(User).where(User.id == attempt.candidate_id))
        if db.exec(select(Attempt.id).where(Attempt.exam_id == attempt.exam_id)).first() is None:
            db.execute(delete(Exam).where(Exam.id == attempt.exam_id))


def test_overview_dry_run_and_run_now_delete_exactly_the_expired_media(page, restore_settings):
    title = f"Old exam {uuid.uuid4().hex[:6]}"
    with session_scope() as db:
        made = make_media_attempt(db, ended_ago=timedelta(days=500), now=utcnow(), exam_title=title)
        held = make_media_attempt(db, ended_ago=timedelta(days=400), now=utcnow(), exam_title=title)
        started = db.get(Attempt, made.attempt_id).started_at
    try:
        _open_settings(page)
        # The chart has a bar for the old attempt's month and one for its exam.
        expect(page.locator("#usage-by-month")).to_contain_text(f"{started:%Y-%m}")
        expect(page.locator("#usage-by-exam")).to_contain_text(title)
        expect(page.locator("#next-run")).to_contain_text(re.compile(r"will free \d+(\.\d)? (bytes|kB)"))

        page.fill("#hold-attempt", "abc")
        page.click("#place-hold")
        expect(page.locator("#hold-error")).to_have_text("Enter the number of the attempt to hold.")
        page.fill("#hold-attempt", str(held.attempt_id))
        page.click("#place-hold")
        expect(page.locator("#hold-error")).to_contain_text("reason")  # one rule with the attempt page
        page.fill("#hold-reason", "appeal 7")
        page.click("#place-hold")
        expect(page.locator(f"#hold-{held.attempt_id}")).to_contain_text(title)
        expect(page.locator("#hold-error")).to_have_count(0)

        page.click("#dry-run")
        row = page.locator(f"#plan-{made.attempt_id}")
        expect(row).to_contain_text(title)
        expect(row).to_contain_text("retention period of 30 days after the exam ended")
        expect(page.locator(f"#plan-{held.attempt_id}")).to_have_count(0)
        expect(page.locator("#plan-summary")).to_contain_text("A run now would delete")
        assert all(storage.absolute(f).is_file() for f in made.files)

        page.click("#run-now")
        page.click("#run-now-confirm")
        expect(page.locator("#run-summary")).to_contain_text("Deleted the media of")
        expect(page.locator("#recent-runs")).to_contain_text("Ada Admin")
        assert not any(storage.absolute(f).exists() for f in made.files)
        assert all(storage.absolute(f).is_file() for f in held.files)
        with session_scope() as db:
            rec = db.exec(select(Recording).where(Recording.attempt_id == made.attempt_id)).one()
            assert rec.status == RecordingStatus.expired and rec.expired_reason
            entry = db.exec(select(AuditLog).where(AuditLog.action == "media_deleted",
                                                   AuditLog.target == f"attempt:{made.attempt_id}")).one()
            assert entry.user_id == user_id("admin@example.com") and entry.data["files"] == len(made.files)

        # Media that is gone cannot be held; a hold is released as it was placed, audited.
        page.fill("#hold-reason", "appeal 8")
        page.fill("#hold-attempt", str(made.attempt_id))
        page.click("#place-hold")
        expect(page.locator("#hold-error")).to_contain_text("already deleted")
        page.click(f"#release-{held.attempt_id}")
        expect(page.locator(f"#hold-{held.attempt_id}")).to_have_count(0)
        with session_scope() as db:
            assert db.get(Attempt, held.attempt_id).legal_hold is False
            actions = db.exec(select(AuditLog.action).where(AuditLog.target == f"attempt:{held.attempt_id}")
                              .order_by(AuditLog.id)).all()
        assert actions == ["legal_hold_set", "legal_hold_released"]
    finally:
        _remove_attempt(made.attempt_id)
        _remove_attempt(held.attempt_id)


@pytest.mark.parametrize("email", ["proctor@example.com", "supervisor@example.com", "alice@example.com"])
def test_non_admins_are_refused(page, email):
    sign_in(page, email)
    page.goto("/admin/settings")
    page.wait_for_url("**/forbidden")
    expect(page.locator("#setting-retention_days")).to_have_count(0)


def test_signed_out_visitor_is_sent_to_log_in(page):
    page.goto("/admin/settings")
    page.wait_for_url(re.compile(r"/login\?next=/admin/settings/?$"))
