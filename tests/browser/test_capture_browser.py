"""What the candidate's browser captures besides the recorded video: an exam that streams live only,
or records nothing, still takes a snapshot every interval and reports tab and focus changes (shown
on the attempt video page) and uploads no video; the upload queue asks for persistent storage; a
screen recording keeps the screen's sound in its MP4, and its evidence bundle, downloaded from the
attempt video page, verifies."""

import io
import re
import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.storage import storage
from proctor_app.media.evidence.signing import install_key, public_key_text
from proctor_app.media.evidence.verify import verify_bundle
from proctor_app.models import AuditLog, Recording, RecordingStatus, Snapshot
from tests.support.exam_pages import candidate_with_exam, events, kinds, start_exam, submit
from tests.support.finalized import recording_of
from tests.support.pages import sign_in
from tests.support.polling import wait_for

pytestmark = pytest.mark.browser

INTERVAL_S = 5
# The page cannot lose focus or visibility headless: the events the browser fires then.
LEAVE_AND_COME_BACK = """() => {
  Object.defineProperty(document, "hidden", { get: () => true, configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
  window.dispatchEvent(new Event("blur"));
  Object.defineProperty(document, "hidden", { get: () => false, configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
  window.dispatchEvent(new Event("focus"));
}"""


def snapshots(attempt_id: int) -> list[Snapshot]:
    with session_scope() as db:
        return db.exec(select(Snapshot).where(Snapshot.attempt_id == attempt_id).order_by(Snapshot.seq)).all()


# Exams that capture no video: live only, or nothing live or recorded.
NO_VIDEO_EXAMS = {"live-only": dict(recording=False, live_video=True),
                  "recording-off": dict(recording=False, live_video=False)}


def test_snapshots_and_events_without_recording(new_context):
    """Both exams side by side, each in a browser context of its own (their snapshots take most of
    the time, waited for together)."""
    taking = {}
    for name, flags in NO_VIDEO_EXAMS.items():
        email, exam_id = candidate_with_exam(recording_required=False, snapshot_interval_s=INTERVAL_S, **flags)
        page = new_context().new_page()
        video_uploads = []
        page.on("request", lambda r, video_uploads=video_uploads: "/streams/" in r.url and video_uploads.append(r.url))
        attempt_id = start_exam(page, email, exam_id)
        # Events are reported while the exam is recorded: from the recorder's mount on.
        expect(page.locator("#recorder-state")).to_have_attribute("data-state", "recording")
        page.evaluate(LEAVE_AND_COME_BACK)
        taking[name] = (page, attempt_id, video_uploads)

    for name, (page, attempt_id, video_uploads) in taking.items():
        wait_for(lambda: len(snapshots(attempt_id)) >= 4, timeout=40, what=f"four snapshots ({name})")
        taken = snapshots(attempt_id)
        assert [s.seq for s in taken] == list(range(len(taken))), name
        gaps = [(b.taken_at - a.taken_at).total_seconds() for a, b in zip(taken, taken[1:])]
        assert all(INTERVAL_S - 0.5 <= gap <= INTERVAL_S + 2.5 for gap in gaps), (name, gaps)
        with av.open(io.BytesIO(storage.absolute(taken[-1].path).read_bytes())) as picture:
            assert next(picture.decode(video=0)).width == 640
        wait_for(lambda: {"tab_hidden", "tab_visible", "window_blur", "window_focus"} <= set(kinds(attempt_id)),
                 what=f"tab and focus events ({name})")
        submit(page)
        expect(page.locator("#flush-done")).to_be_visible(timeout=30_000)
        assert video_uploads == [], name
        with session_scope() as db:
            assert db.exec(select(Recording).where(Recording.attempt_id == attempt_id)).all() == [], name

    supervisor = new_context().new_page()
    sign_in(supervisor, "supervisor@example.com")
    for name, (_, attempt_id, _) in taking.items():
        supervisor.goto(f"/attempts/{attempt_id}/video")
        expect(supervisor.locator("#snapshot-gallery img")).to_have_count(len(snapshots(attempt_id)))
        for shown in ("Left the exam tab", "Back on the exam tab", "Switched away from the exam window",
                      "Back in the exam window"):
            expect(supervisor.locator("#event-list")).to_contain_text(shown)


def test_the_upload_queue_asks_for_persistent_storage_and_reports_the_answer(page):
    page.add_init_script("""
      window.__persistAsked = 0;
      const realPersist = navigator.storage.persist.bind(navigator.storage);
      navigator.storage.persist = () => (window.__persistAsked++, realPersist());
    """)
    email, exam_id = candidate_with_exam(recording=False, recording_required=False)
    attempt_id = start_exam(page, email, exam_id)
    wait_for(lambda: "storage_persistence" in kinds(attempt_id), what="the persistence report")
    assert page.evaluate("window.__persistAsked") >= 1
    granted = page.evaluate("navigator.storage.persisted()")
    reported, = [e.data for e in events(attempt_id) if e.kind == "storage_persistence"]
    assert reported["persisted"] is granted and reported["quota_mb"] > 0
    assert page.locator("#recorder-state").get_attribute("data-persisted") == str(granted).lower()
    print(f"Chromium granted persistent storage: {granted}, quota {reported['quota_mb']} MB")


def volume_db(path) -> dict[str, float]:
    """ffmpeg's volumedetect of the file's audio: {"mean_volume": dB, "max_volume": dB}."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostats", "-i", str(path), "-map", "0:a:0",
                          "-af", "volumedetect", "-f", "null", "-"], capture_output=True, text=True, check=True)
    return {key: float(value) for key, value in re.findall(r"(mean_volume|max_volume): (-?[\d.]+) dB", out.stderr)}


def test_the_screen_sound_reaches_the_screen_recording_mp4(page):
    # Chromium's fake capture (--use-fake-device-for-media-stream --use-fake-ui-for-media-stream)
    # hands getDisplayMedia({audio: true}) a "Fake audio" track: a beep every second.
    email, exam_id = candidate_with_exam(recording=False, screen_recording=True, snapshots=False)
    attempt_id = start_exam(page, email, exam_id, device_check=False)
    expect(page.locator("#screen-audio")).to_have_attribute("data-shared", "true")
    page.wait_for_timeout(8000)
    submit(page)
    expect(page.locator("#flush-done")).to_be_visible(timeout=30_000)
    started, = [e.data for e in events(attempt_id) if e.kind == "segment_started"]
    assert started["stream"] == "screen" and started["audio"] is True and "opus" in started["mime_type"]
    # Partial when the screen share started a moment after the exam: that moment is a gap.
    wait_for(lambda: recording_of(attempt_id, "screen").status in (RecordingStatus.completed,
                                                                    RecordingStatus.partial),
             timeout=120, what="the screen recording's MP4")
    rec = recording_of(attempt_id, "screen")
    mp4 = storage.absolute(rec.mp4_path)
    with av.open(str(mp4)) as container:
        # Opus when the recording was copied as it came, AAC when it was put on the exam's clock.
        assert container.streams.audio[0].codec_context.name in ("opus", "aac")
    volume = volume_db(mp4)
    print(f"screen recording MP4 audio: {volume}")
    # Silence would be about -91 dB; measured here: mean -21.8 dB, max 0.0 dB.
    assert volume["max_volume"] > -20 and volume["mean_volume"] > -50, volume

    # A supervisor downloads the attempt's evidence bundle from its page: it verifies on its own.
    page.context.clear_cookies()
    sign_in(page, "supervisor@example.com")
    page.goto(f"/attempts/{attempt_id}/video")
    with page.expect_download() as download:
        page.locator("#evidence-download").click()
    report = verify_bundle(Path(download.value.path()), public_key_text(install_key()))
    assert report.ok, report.problems
    with session_scope() as db:
        assert db.exec(select(AuditLog).where(AuditLog.action == "evidence_downloaded",
                                              AuditLog.target == f"attempt:{attempt_id}")).one()


def test_the_admin_settings_page_shows_the_signing_key(page):
    sign_in(page, "admin@example.com")
    page.goto("/admin/settings")
    expect(page.locator("#signing-key")).to_have_text(public_key_text(install_key()))
