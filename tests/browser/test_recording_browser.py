"""Recording in headless Chromium with the fake camera, against the real server and disk: chunks
arrive intact and decode, nothing is lost across a network cut, a reload or a server restart, and
failing devices block (required) or warn (optional) as the exam says."""

import hashlib
import io
import time

import av
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.storage import storage
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    Chunk,
    Question,
    Recording,
    RecordingStatus,
    Segment,
    Snapshot,
    UploadToken,
)
from proctor_app.services import uploads
from tests.support.exam_pages import DENY_CAMERA_SWITCH, candidate_with_exam, events, kinds, start_exam, submit
from tests.support.pages import sign_in
from tests.support.polling import wait_for

pytestmark = pytest.mark.browser

# What the browser still holds for upload (the recorder's IndexedDB queue).
QUEUED_IDS = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("proctor-recorder");
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const keys = open.result.transaction("uploads").objectStore("uploads").getAllKeys();
    keys.onsuccess = () => { open.result.close(); resolve(keys.result); };
  };
})"""
END_CAMERA_TRACK = """() => {
  const track = window.proctorRecorder.streams.camera.media.getVideoTracks()[0];
  track.stop();
  track.dispatchEvent(new Event("ended"));
}"""


def recorder(page) -> dict:
    return page.locator("#recorder-state").evaluate("e => ({...e.dataset})")


def acked(page) -> int:
    return int(recorder(page).get("acked", 0))


def segments(attempt_id: int, stream: str = "camera") -> dict[int, list[Chunk]]:
    with session_scope() as db:
        rows = db.exec(select(Segment, Chunk).join(Chunk, Chunk.segment_id == Segment.id)
                       .join(Recording, Recording.id == Segment.recording_id)
                       .where(Recording.attempt_id == attempt_id, Recording.stream == stream)
                       .order_by(Segment.number, Chunk.seq)).all()
    found: dict[int, list[Chunk]] = {}
    for segment, chunk in rows:
        found.setdefault(segment.number, []).append(chunk)
    return found


def assert_complete_and_decodable(chunks: list[Chunk]) -> float:
    """The segment's chunks are 0..n without a hole, each file matches its hash, and together they
    decode for as long as they cover on the clock; returns that duration (s)."""
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    data = b""
    for chunk in chunks:
        body = storage.absolute(chunk.path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == chunk.sha256 and len(body) == chunk.size
        data += body
    # Each chunk starts where the one before ended: the times cover the segment without holes.
    assert all(a.end_time == b.start_time for a, b in zip(chunks, chunks[1:]))
    covered = (chunks[-1].end_time - chunks[0].start_time).total_seconds()
    with av.open(io.BytesIO(data)) as container:
        times = [frame.time for frame in container.decode(container.streams.video[0])]
    assert len(times) > 5
    assert max(times) - min(times) == pytest.approx(covered, abs=1.5)
    return covered


def test_recorded_chunks_arrive_intact_decode_and_flush_after_submit(page):
    email, exam_id = candidate_with_exam()
    attempt_id = start_exam(page, email, exam_id)
    expect(page.locator("#recording-indicator")).to_contain_text("Recording")
    page.get_by_role("radio", name="yes").click()
    wait_for(lambda: acked(page) >= 3, what="three chunks acknowledged")
    expect(page.locator("#upload-status")).to_have_text("All uploaded")
    # Checked before the submit: once the uploads settle, processing takes the raw chunks.
    (number, chunks), = segments(attempt_id).items()
    assert number == 0 and len(chunks) >= 2
    assert_complete_and_decodable(chunks)
    with session_scope() as db:
        row = db.exec(select(Recording).where(Recording.attempt_id == attempt_id)).one()
        first_question = db.exec(select(Question.id).where(Question.exam_id == exam_id,
                                                            Question.position == 0)).one()
        snapshot = db.exec(select(Snapshot).where(Snapshot.attempt_id == attempt_id)).first()
    assert row.mime_type.startswith("video/") and row.chunk_count >= len(chunks) and row.gap_count == 0
    assert any(first_question in c.meta["questions_viewed"] for c in chunks)
    with av.open(storage.absolute(snapshot.path)) as picture:  # the first snapshot, taken 3 s in
        assert next(picture.decode(video=0)).width == 640

    # Uploads fail from here on: the submission must not wait for them.
    page.route("**/api/attempts/*/streams/**", lambda route: route.abort())
    submit(page)
    with session_scope() as db:
        assert db.get(Attempt, attempt_id).status == AttemptStatus.submitted
        assert not uploads.uploads_settled(db, db.get(Attempt, attempt_id))
    expect(page.locator("#flush-pending")).to_be_visible()
    expect(page.locator("#flush-progress")).to_be_visible()
    page.unroute("**/api/attempts/*/streams/**")
    expect(page.locator("#flush-done")).to_be_visible(timeout=30_000)
    assert page.evaluate(QUEUED_IDS) == []

    (number, after), = segments(attempt_id).items()
    assert [c.seq for c in after] == list(range(len(after))) and len(after) > len(chunks)
    assert all(a.end_time == b.start_time for a, b in zip(after, after[1:]))
    assert any(first_question in c.meta["questions_answered"] for c in after)
    with session_scope() as db:
        assert uploads.uploads_settled(db, db.get(Attempt, attempt_id))
    seen = kinds(attempt_id)
    for kind in ("recording_started", "segment_started", "recording_stopped", "uploads_flushed"):
        assert kind in seen
    assert seen.index("submitted") < seen.index("uploads_flushed")


def test_a_20_second_network_cut_loses_nothing(page, context):
    email, exam_id = candidate_with_exam()
    attempt_id = start_exam(page, email, exam_id)
    # A chunk stored, not any upload: the browser's events are acknowledged before it.
    wait_for(lambda: segments(attempt_id), what="a first chunk stored")
    first_acked = time.monotonic()
    context.set_offline(True)
    expect(page.locator("#upload-status")).to_contain_text("Offline", timeout=10_000)
    expect(page.locator("#upload-status")).to_contain_text("waiting to upload", timeout=10_000)
    time.sleep(20)
    queued = len(page.evaluate(QUEUED_IDS))
    assert queued >= 5  # about 20 s of 3 s chunks, kept in the browser
    context.set_offline(False)
    back_online = time.monotonic()
    expect(page.locator("#upload-status")).to_have_text("All uploaded", timeout=30_000)
    # The indicator leaves out uploads younger than a few seconds (traffic, not backlog): the
    # chunk recorded last before the network came back may still be on its way.
    wait_for(lambda: page.evaluate(QUEUED_IDS) == [], what="the browser's queue empty")

    found = segments(attempt_id)
    covered = sum(assert_complete_and_decodable(chunks) for chunks in found.values())
    # The first chunk (before first_acked) makes up for the one still being recorded at
    # back_online; chunk lengths are not exact, hence the second of slack.
    assert covered >= back_online - first_acked - 1
    seen = kinds(attempt_id)
    assert "offline" in seen and "online" in seen and "chunks_missing" not in seen


def test_a_reload_sends_what_was_queued_and_starts_a_new_segment(page):
    email, exam_id = candidate_with_exam()
    attempt_id = start_exam(page, email, exam_id)
    wait_for(lambda: acked(page) >= 1, what="a first chunk acknowledged")
    # The server is unreachable for chunks, so they pile up in the browser; then the page reloads.
    page.route("**/api/attempts/*/streams/**", lambda route: route.abort())

    def queued_chunks():
        chunks = [i for i in page.evaluate(QUEUED_IDS) if "/chunk/" in i]
        return chunks if len(chunks) >= 2 else None

    queued = wait_for(queued_chunks, what="two chunks queued")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    page.reload()
    assert dialogs == ["beforeunload"]  # the candidate is warned before leaving
    expect(page.locator("#recording-indicator")).to_contain_text("Recording")
    page.unroute("**/api/attempts/*/streams/**")
    expect(page.locator("#upload-status")).to_have_text("All uploaded", timeout=30_000)
    wait_for(lambda: 1 in segments(attempt_id), what="the new segment's first chunk")

    found = segments(attempt_id)
    stored = {f"{attempt_id}/chunk/camera/{n}/{c.seq}" for n, chunks in found.items() for c in chunks}
    assert set(queued) <= stored
    for chunks in found.values():
        assert_complete_and_decodable(chunks)
    started = [e.data for e in events(attempt_id) if e.kind == "segment_started"]
    assert [(s["segment"], s["reason"]) for s in started] == [(0, "start"), (1, "page_load")]
    assert started[1]["navigation"] == "reload"


def test_a_full_storage_is_reported_and_nothing_is_dropped(browser, app_server):
    context = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    # IndexedDB refuses every chunk, as when the browser's quota is used up.
    context.add_init_script("""
      const realPut = IDBObjectStore.prototype.put;
      IDBObjectStore.prototype.put = function (value, key) {
        if (this.name === "uploads") throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
        return realPut.call(this, value, key);
      };
    """)
    page = context.new_page()
    try:
        email, exam_id = candidate_with_exam()
        attempt_id = start_exam(page, email, exam_id)
        expect(page.locator("#recording-warning")).to_contain_text("storage is full")
        wait_for(lambda: acked(page) >= 3, what="chunks uploaded from memory")
        assert page.evaluate(QUEUED_IDS) == []
        (_, chunks), = segments(attempt_id).items()
        assert_complete_and_decodable(chunks)
        quota, = [e for e in events(attempt_id) if e.kind == "storage_quota"]
        assert "QuotaExceededError" in quota.data["error"]
    finally:
        context.close()


def test_a_server_restart_mid_exam_loses_nothing(page, app_server):
    email, exam_id = candidate_with_exam()
    attempt_id = start_exam(page, email, exam_id)
    wait_for(lambda: acked(page) >= 1, what="a first chunk acknowledged")
    app_server.restart()
    # The page reconnects, the recorder is mounted again (a new segment) and the queue drains.
    wait_for(lambda: 1 in segments(attempt_id), timeout=60, what="a segment after the restart")
    expect(page.locator("#upload-status")).to_have_text("All uploaded", timeout=30_000)
    # The indicator leaves out uploads younger than a few seconds (traffic, not backlog): segment
    # 0's last chunk, queued while the server was down, may still be on its way.
    wait_for(lambda: page.evaluate(QUEUED_IDS) == [], what="the browser's queue empty")

    found = segments(attempt_id)
    for chunks in found.values():
        assert_complete_and_decodable(chunks)
    # Segment 0 ran until the page lost its state; its last chunk was queued, then sent.
    restart_gap = (found[1][0].start_time - found[0][-1].end_time).total_seconds()
    assert restart_gap < 5
    assert "chunks_missing" not in kinds(attempt_id)


def test_required_recording_blocks_until_the_camera_works(browser, app_server):
    context = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    context.add_init_script(DENY_CAMERA_SWITCH)
    page = context.new_page()
    try:
        email, exam_id = candidate_with_exam()
        sign_in(page, email)
        page.goto(f"/candidate/exams/{exam_id}")
        page.locator("#consent-checkbox").click()
        page.locator("#consent-accept").click()
        expect(page.locator("#device-ok")).to_be_visible()
        page.evaluate("window.__denyCamera = true")  # denied after the check: the recorder fails
        page.locator("#start-exam").click()
        expect(page.locator("#recording-blocked-message")).to_contain_text("refused")
        page.locator("#recording-retry").click()
        expect(page.locator("#recording-blocked-message")).to_be_visible()
        page.evaluate("window.__denyCamera = false")
        page.locator("#recording-retry").click()
        expect(page.locator("#recording-blocked-message")).to_be_hidden()
        expect(page.locator("#recording-indicator")).to_contain_text("Recording")
        with session_scope() as db:
            attempt_id = db.exec(select(Attempt.id).where(Attempt.exam_id == exam_id)).one()
        wait_for(lambda: segments(attempt_id), what="chunks after the retry")
        failed = [e for e in events(attempt_id) if e.kind == "recording_failed"]
        assert len(failed) == 1 and failed[0].data["reason"].startswith("NotAllowedError")
        assert failed[0].severity == "critical"
        with session_scope() as db:
            row = db.exec(select(Recording).where(Recording.attempt_id == attempt_id)).one()
        assert row.status == RecordingStatus.in_progress

        # The permission is taken away mid-exam: blocked while missing, back by itself afterwards.
        page.evaluate("window.__denyCamera = true")
        page.evaluate(END_CAMERA_TRACK)
        expect(page.locator("#recording-blocked-message")).to_contain_text("disconnected")
        time.sleep(6)  # a re-acquisition attempt fails meanwhile
        expect(page.locator("#recording-blocked-message")).to_be_visible()
        page.evaluate("window.__denyCamera = false")
        expect(page.locator("#recording-blocked-message")).to_be_hidden(timeout=15_000)
        wait_for(lambda: 1 in segments(attempt_id), what="a chunk of the re-acquired camera")
        seen = kinds(attempt_id)
        assert seen.index("camera_lost") < seen.index("camera_regained")
        started = [e.data for e in events(attempt_id) if e.kind == "segment_started"]
        assert started[-1]["reason"] == "device_regained" and started[-1]["segment"] == 1

        # Lost again, and the candidate gives up.
        page.evaluate("window.__denyCamera = true")
        page.evaluate(END_CAMERA_TRACK)
        page.locator("#recording-exit").click()
        page.wait_for_url("**/candidate")
    finally:
        context.close()


def test_optional_recording_warns_and_the_exam_goes_on(browser, app_server):
    context = browser.new_context(base_url=app_server.url, permissions=["camera", "microphone"])
    context.add_init_script(DENY_CAMERA_SWITCH + "window.__denyCamera = true;")
    page = context.new_page()
    uploads = []
    page.on("request", lambda r: "/streams/" in r.url and uploads.append(r.url))
    try:
        email, exam_id = candidate_with_exam(recording_required=False)
        attempt_id = start_exam(page, email, exam_id, device_check=False)
        expect(page.locator("#recording-warning")).to_contain_text("goes on without it")
        expect(page.locator("#recording-blocked-message")).to_have_count(0)
        page.get_by_role("radio", name="no").click()
        expect(page.locator("#saved-note")).to_have_text("All answers saved")
        wait_for(lambda: "recording_failed" in kinds(attempt_id), what="the failure event")
        with session_scope() as db:
            row = db.exec(select(Recording).where(Recording.attempt_id == attempt_id)).one()
        assert row.status == RecordingStatus.failed and "NotAllowedError" in row.failure_reason
        failed, = [e for e in events(attempt_id) if e.kind == "recording_failed"]
        assert failed.data["required"] is False
        assert uploads == []
    finally:
        context.close()


def test_with_recording_off_nothing_records_or_uploads(page):
    email, exam_id = candidate_with_exam(recording=False, snapshots=False)
    requests = []
    page.on("request", lambda r: "/api/attempts/" in r.url and requests.append(r.url))
    attempt_id = start_exam(page, email, exam_id, device_check=False)
    page.get_by_role("radio", name="yes").click()
    expect(page.locator("#saved-note")).to_have_text("All answers saved")
    time.sleep(4)
    expect(page.locator("#recording-indicator")).to_have_count(0)
    expect(page.locator("#recorder-state")).to_have_count(0)
    submit(page)
    expect(page.locator("#flush-progress")).to_have_count(0)
    assert requests == []
    with session_scope() as db:
        assert db.exec(select(UploadToken).where(UploadToken.attempt_id == attempt_id)).all() == []
        assert db.exec(select(Recording).where(Recording.attempt_id == attempt_id)).all() == []
    assert not {"recording_started", "segment_started"} & set(kinds(attempt_id))


def test_screen_recording_blocks_when_sharing_stops_until_shared_again(page):
    email, exam_id = candidate_with_exam(screen_recording=True)
    attempt_id = start_exam(page, email, exam_id)
    wait_for(lambda: segments(attempt_id, "screen"), what="a screen chunk")
    page.evaluate("""() => {
      const track = window.proctorRecorder.streams.screen.media.getVideoTracks()[0];
      track.stop();
      track.dispatchEvent(new Event("ended"));
    }""")
    expect(page.locator("#recording-blocked-message")).to_contain_text("Share your entire screen")
    page.locator("#recording-retry").click()
    expect(page.locator("#recording-blocked-message")).to_be_hidden()
    wait_for(lambda: 1 in segments(attempt_id, "screen"), what="a chunk of the new screen share")
    seen = kinds(attempt_id)
    assert seen.index("screen_lost") < seen.index("screen_regained")
    for stream in ("camera", "screen"):
        for chunks in segments(attempt_id, stream).values():
            assert [c.seq for c in chunks] == list(range(len(chunks)))
