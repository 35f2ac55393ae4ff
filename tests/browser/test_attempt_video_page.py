"""The attempts list and the attempt video page, in Chromium against the running app."""

import re
import secrets
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.processing import preview
from proctor_app.models import Attempt, AuditLog, Job, Recording, RecordingStatus, Role, User, utcnow
from proctor_app.services import legal_holds
from tests.support import samples
from tests.support.factories import current_user, make_user, user_id
from tests.support.pages import login, sign_in
from tests.support.review_media import EVENTS, SNAPSHOT_TIMES, make_review_attempt

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def attempt(app_server):
    return make_review_attempt()


def _video_time(page, stream: str = "camera") -> float:
    return page.eval_on_selector(f"#player-video-{stream}", "v => v.currentTime")


def _wait_for_time(page, seconds: float, stream: str = "camera", tolerance: float = 0.4) -> None:
    page.wait_for_function(
        "([sel, t, tol]) => { const v = document.querySelector(sel); return v && Math.abs(v.currentTime - t) < tol; }",
        arg=[f"#player-video-{stream}", seconds, tolerance])


def _playhead_percent(page) -> float:
    return float(page.eval_on_selector("#player-playhead", "el => parseFloat(el.style.left)"))


def test_player_plays_seeks_and_follows_markers_and_snapshots(page, attempt):
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{attempt.attempt_id}/video")
    expect(page.locator("#attempt-heading")).to_contain_text("Review Candidate")
    camera = page.locator("#player-video-camera")
    expect(camera).to_be_visible()
    expect(page.locator("#player-video-screen")).to_be_visible()
    page.wait_for_function("document.querySelector('#player-video-camera').readyState >= 1")

    # Plays: time moves on, in both videos.
    page.click("#player-play")
    page.wait_for_function("document.querySelector('#player-video-camera').currentTime > 0.5")
    page.wait_for_function("document.querySelector('#player-video-screen').currentTime > 0.3")
    page.click("#player-play")
    assert page.eval_on_selector("#player-video-camera", "v => v.paused")

    # Markers: one per event, coloured by severity; a click moves video and playhead there.
    markers = page.locator(".timeline-marker")
    expect(markers).to_have_count(len(EVENTS))
    assert [markers.nth(i).get_attribute("data-severity") for i in range(len(EVENTS))] == [e[2] for e in EVENTS]
    colors = {markers.nth(i).evaluate("el => getComputedStyle(el).backgroundColor") for i in range(len(EVENTS))}
    assert len(colors) == 3
    before = _playhead_percent(page)
    critical = markers.nth(2)
    critical.click()
    _wait_for_time(page, EVENTS[2][0])
    _wait_for_time(page, EVENTS[2][0], stream="screen")  # the second video follows
    page.wait_for_function(f"parseFloat(document.querySelector('#player-playhead').style.left) > {before + 30}")

    # Steps of 5 s by button and keyboard, and the speed.
    page.click("#player-back")
    _wait_for_time(page, EVENTS[2][0] - 5)
    page.keyboard.press("ArrowRight")
    _wait_for_time(page, EVENTS[2][0])
    page.select_option("#player-speed", "16")
    assert page.eval_on_selector("#player-video-camera", "v => v.playbackRate") == 16
    page.wait_for_function("document.querySelector('#player-video-screen').playbackRate === 16")
    page.keyboard.press("<")
    assert page.eval_on_selector("#player-video-camera", "v => v.playbackRate") == 8

    # Snapshot gallery: images load; a click seeks to the snapshot's time.
    snapshots = page.locator("#snapshot-gallery .snapshot img")
    expect(snapshots).to_have_count(len(SNAPSHOT_TIMES))
    page.wait_for_function("[...document.querySelectorAll('#snapshot-gallery img')].every(i => i.naturalWidth > 0)")
    page.locator("#snapshot-gallery .snapshot").first.click()
    _wait_for_time(page, SNAPSHOT_TIMES[0])

    # The event list seeks too.
    page.locator("#event-list .event-row").nth(1).click()
    _wait_for_time(page, EVENTS[1][0])
    expect(page.locator("#player-caption")).to_have_text("Playing the final recording.")

    # Events read as sentences; their data is behind a disclosure.
    rows = page.locator("#event-list .event-row")
    expect(rows.nth(1).locator(".event-text")).to_have_text("Left the exam tab")
    expect(rows.nth(0).locator(".event-text")).to_have_text("Face missing")
    detail = rows.nth(0).get_by_text("Source: test")
    expect(detail).to_be_hidden()
    rows.nth(0).locator(".event-details summary").click()
    expect(detail).to_be_visible()

    # Hovering the timeline shows the sprite thumbnail for that time.
    timeline = page.locator("#player-timeline")
    timeline.hover(position={"x": timeline.bounding_box()["width"] * 0.75, "y": 18})
    thumb = page.locator("#player-thumb")
    expect(thumb).to_be_visible()
    assert "sprite" in thumb.evaluate("el => el.style.backgroundImage")
    assert thumb.evaluate("el => el.style.backgroundPosition").startswith("-")


def test_health_retention_download_and_review(page, attempt):
    sign_in(page, "proctor@example.com")
    page.goto(f"/attempts/{attempt.attempt_id}/video")
    notice = page.locator("#retention-notice")
    expect(notice).to_contain_text("This recording will be deleted after 30 days, on ")
    with session_scope() as db:
        ended = db.get(Attempt, attempt.attempt_id).ended_at
    expect(notice).to_contain_text(f"{ended + timedelta(days=30):%Y-%m-%d}")
    camera_panel = page.locator(".stream-panel").first
    # 1 s of 12 is a gap ("network"): 91.7 % coverage.
    expect(camera_panel.locator(".coverage")).to_contain_text("91.7%")
    expect(camera_panel.locator(".gaps")).to_contain_text("network")
    expect(camera_panel.locator(".gaps")).to_contain_text("0:06-0:07")

    with page.expect_download() as download_info:
        camera_panel.locator(".download-link").click()
    assert download_info.value.suggested_filename == f"attempt-{attempt.attempt_id}-camera.mp4"

    page.locator("#review-status").click()
    page.get_by_role("option", name="suspicious").click()
    page.fill("#review-notes", "Looked away at 0:05 and someone else at 0:09.")
    page.click("#review-save")
    expect(page.locator("#reviewed-label")).to_contain_text("Last saved by Pat Proctor")
    with session_scope() as db:
        saved = db.get(Attempt, attempt.attempt_id)
        audit = db.exec(select(AuditLog).where(AuditLog.action == "review_saved",
                                               AuditLog.target == f"attempt:{attempt.attempt_id}")).all()
        viewed = db.exec(select(AuditLog).where(AuditLog.action == "attempt_viewed",
                                                AuditLog.target == f"attempt:{attempt.attempt_id}",
                                                AuditLog.user_id == user_id("proctor@example.com"))).all()
    assert (saved.review_status, saved.reviewed_by) == ("suspicious", user_id("proctor@example.com"))
    assert saved.review_notes.startswith("Looked away")
    assert saved.reviewed_at is not None
    assert [(a.user_id, a.data["new_status"]) for a in audit] == [(user_id("proctor@example.com"), "suspicious")]
    assert viewed
    page.reload()
    expect(page.locator("#review-notes")).to_have_value("Looked away at 0:05 and someone else at 0:09.")


def test_expired_and_processing_attempts_say_so(page):
    expired = make_review_attempt(status=RecordingStatus.expired, ended_days_ago=40)
    sign_in(page, "admin@example.com")
    page.goto(f"/attempts/{expired.attempt_id}/video")
    expect(page.locator("#retention-notice")).to_contain_text("This recording was deleted on")
    expect(page.locator("#no-player")).to_be_visible()
    expect(page.locator("#event-list .event-row")).to_have_count(len(EVENTS))

    processing = make_review_attempt(status=RecordingStatus.processing)
    page.goto(f"/attempts/{processing.attempt_id}/video")
    expect(page.locator(".processing-progress")).to_have_count(2)
    expect(page.locator(".stream-panel").first).to_contain_text("processing 40%")
    expect(page.locator("#no-player")).to_be_visible()
    # When processing finishes, the page notices by itself and shows the player.
    with session_scope() as db:
        for rec in db.exec(select(Recording).where(Recording.attempt_id == processing.attempt_id)):
            rec.status, rec.progress = RecordingStatus.completed, 1.0
            db.add(rec)
    expect(page.locator("#player-video-camera")).to_be_visible()
    expect(page.locator(".processing-progress")).to_have_count(0)


def test_attempts_list_filters_and_links(page, attempt):
    sign_in(page, "supervisor@example.com")
    page.goto("/attempts")
    page.fill("#filter-search", "review-")
    page.click("#search-submit")
    row = page.locator(f".attempt-row[data-attempt-id='{attempt.attempt_id}']")
    expect(row).to_be_visible()
    expect(row.locator(".recording-badge").first).to_contain_text("completed")
    expect(row.locator(".recording-badge").first).to_contain_text("4 chunks")
    row.locator(f"#open-attempt-{attempt.attempt_id}").click()
    page.wait_for_url(f"**/attempts/{attempt.attempt_id}/video")


@pytest.mark.parametrize("email", ["alice@example.com", None])
def test_candidates_and_anonymous_are_refused(page, attempt, email):
    if email:
        login(page, email)
    for path in (f"/attempts/{attempt.attempt_id}/video", "/attempts"):
        page.goto(path)
        if email:
            page.wait_for_url("**/forbidden")
        else:
            page.wait_for_url(re.compile(r"/login\?next="))
        expect(page.locator("#player-video-camera")).to_have_count(0)
        expect(page.locator(".attempt-row")).to_have_count(0)


def test_review_handler_checks_the_role_again(page, attempt):
    """A reviewer demoted while the page is open cannot save: the handler refuses, not just on_load."""
    email, password = f"rv-{secrets.token_hex(4)}@example.com", "reviewer-pass-1"
    with session_scope() as db:
        make_user(db, role=Role.supervisor, email=email, name="Short Term", password=password)
    sign_in(page, email, password)
    page.goto(f"/attempts/{attempt.attempt_id}/video")
    expect(page.locator("#review-save")).to_be_visible()
    with session_scope() as db:
        before = db.get(Attempt, attempt.attempt_id).review_notes
        demoted = db.exec(select(User).where(User.email == email)).one()
        demoted.role = Role.candidate
        db.add(demoted)
    page.fill("#review-notes", "should never be saved")
    page.click("#review-save")
    page.wait_for_url("**/forbidden")
    with session_scope() as db:
        assert db.get(Attempt, attempt.attempt_id).review_notes == before


def test_proctor_sees_only_assigned_exams(page):
    other = make_review_attempt(assign_proctor=False)
    sign_in(page, "proctor@example.com")
    page.goto("/attempts")
    page.fill("#filter-search", "review-")
    page.click("#search-submit")
    expect(page.locator(".attempt-row").first).to_be_visible()
    expect(page.locator(f".attempt-row[data-attempt-id='{other.attempt_id}']")).to_have_count(0)
    page.goto(f"/attempts/{other.attempt_id}/video")
    page.wait_for_url("**/forbidden")


def test_admin_processes_a_failed_recording_again(page):
    failed = make_review_attempt(status=RecordingStatus.failed)
    sign_in(page, "admin@example.com")
    page.goto(f"/attempts/{failed.attempt_id}/video")
    expect(page.locator(".stream-panel").first).to_contain_text("failed")
    page.click("#reprocess")
    expect(page.locator("#reprocess-notice")).to_contain_text("queued")
    with session_scope() as db:
        queued = db.exec(select(Job).where(Job.attempt_id == failed.attempt_id)).all()
        audit = db.exec(select(AuditLog).where(AuditLog.action == "reprocess_requested",
                                               AuditLog.target == f"attempt:{failed.attempt_id}")).all()
    assert [job.payload.get("force") for job in queued] == [True]
    assert [a.user_id for a in audit] == [user_id("admin@example.com")]
    # Supervisors and proctors review; only admins reprocess.
    page.context.clear_cookies()
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{failed.attempt_id}/video")
    expect(page.locator("#attempt-heading")).to_be_visible()
    expect(page.locator("#reprocess")).to_have_count(0)


def _hold_audit(attempt_id: int) -> list[tuple[str, int, dict]]:
    with session_scope() as db:
        return [(a.action, a.user_id, a.data) for a in db.exec(
            select(AuditLog).where(AuditLog.target == f"attempt:{attempt_id}",
                                   AuditLog.action.startswith("legal_hold")).order_by(AuditLog.id))]


def _is_held(attempt_id: int) -> bool:
    with session_scope() as db:
        return db.get(Attempt, attempt_id).legal_hold


def _confirm_hold_change(page, reason: str) -> None:
    page.click("#legal-hold-toggle")
    page.fill("#legal-hold-reason", reason)
    page.click("#legal-hold-confirm")


def test_supervisor_places_and_releases_a_legal_hold(page):
    held = make_review_attempt()
    supervisor = user_id("supervisor@example.com")
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{held.attempt_id}/video")
    notice, toggle = page.locator("#retention-notice"), page.locator("#legal-hold-toggle")
    expect(notice).to_contain_text("will be deleted after 30 days, on")
    expect(toggle).to_have_text("Place legal hold")

    _confirm_hold_change(page, "   ")
    expect(page.locator("#legal-hold-error")).to_contain_text("short reason")
    assert not _is_held(held.attempt_id)

    _confirm_hold_change(page, "Appeal 2026-114")
    expect(notice).to_contain_text("kept under legal hold")
    expect(toggle).to_have_text("Release legal hold")
    expect(page.locator("#legal-hold-error")).to_have_count(0)
    assert _is_held(held.attempt_id)
    assert _hold_audit(held.attempt_id) == [("legal_hold_set", supervisor, {"reason": "Appeal 2026-114"})]
    page.reload()
    expect(notice).to_contain_text("kept under legal hold")

    _confirm_hold_change(page, "Appeal closed")
    expect(notice).to_contain_text("will be deleted after 30 days, on")
    expect(toggle).to_have_text("Place legal hold")
    assert not _is_held(held.attempt_id)
    assert [a[0] for a in _hold_audit(held.attempt_id)] == ["legal_hold_set", "legal_hold_released"]


def test_proctor_sees_the_hold_but_cannot_change_it(page):
    held = make_review_attempt()
    with session_scope() as db:
        legal_holds.change_legal_hold(db, held.attempt_id, True, "Appeal 2026-115",
                                 current_user("supervisor@example.com"))
    sign_in(page, "proctor@example.com")
    page.goto(f"/attempts/{held.attempt_id}/video")
    expect(page.locator("#retention-notice")).to_contain_text("kept under legal hold")
    toggle = page.locator("#legal-hold-toggle")
    expect(toggle).to_be_disabled()
    # A forged call: open the dialog through the disabled button's own React click handler (the
    # page is the user's to tamper with) and confirm; the server-side handler refuses.
    toggle.evaluate("""el => {
        const props = el[Object.keys(el).find(key => key.startsWith('__reactProps$'))];
        props.onClick({defaultPrevented: false, preventDefault() {}, currentTarget: el, target: el});
    }""")
    page.fill("#legal-hold-reason", "I want it gone")
    page.click("#legal-hold-confirm")
    page.wait_for_url("**/forbidden")
    assert _is_held(held.attempt_id)
    assert [a[0] for a in _hold_audit(held.attempt_id)] == ["legal_hold_set"]


def test_an_attempt_in_progress_plays_what_was_uploaded_so_far(page, tmp_path):
    clip = samples.encode(tmp_path / "clip.mkv", 9, "h264", size=(320, 240), fps=15).read_bytes()
    started = utcnow() - timedelta(seconds=30)
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, samples.evenly(samples.cut(clip, 9), started, 9),
                           samples.MIME["h264"])
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{sample.attempt_id}/video")
    expect(page.locator("#in-progress")).to_be_visible()
    page.wait_for_function(
        "() => { const v = document.querySelector('#preview-camera'); return v && v.duration > 7; }")
    # The player area says what plays, and nothing claims there is none.
    # (The last piece ends 9 s in, give or take the milliseconds of the chunk times.)
    expect(page.locator("#player-caption")).to_contain_text(
        re.compile(r"Playing what was uploaded so far: up to 0:0[89] into the exam"))
    expect(page.locator("#no-player")).to_have_count(0)
    # The seconds after the last upload are uploading, not a gap the recording left.
    camera = page.locator(".stream-panel").first
    expect(camera.locator(".uploading")).to_contain_text(re.compile(r"Uploading: 0:0[89] to "))
    expect(camera).to_contain_text("No gaps.")
    expect(camera).not_to_contain_text("stopped early")
    expect(camera.locator(".coverage")).to_contain_text("100.0%")
    # More arrives; "Load the latest" fetches the preview again and it has grown.
    samples.upload_segment(sample, "camera", 1, samples.evenly(samples.cut(clip, 9),
                                                               started + timedelta(seconds=10), 9),
                           samples.MIME["h264"])
    time.sleep(preview.MIN_REBUILD_S + 0.5)
    page.click("#reload-previews")
    page.wait_for_function(
        "() => { const v = document.querySelector('#preview-camera'); return v && v.duration > 16; }")
