"""Chunks to a verified MP4 from real Chromium recordings (H.264 and VP8), an offline period
with a reload, the live preview of a recording still coming in, and the whole way from the exam
page's submit to the server's processed MP4. (Damaged and missing chunks, re-processing:
tests/integration/test_finalize.py.)"""

import base64
import functools
import http.server
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import httpx
import pytest
from sqlmodel import select

from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.playback.links import recording_link
from proctor_app.media.processing import growing, preview, thumbnails, timeline
from proctor_app.media.storage import storage
from proctor_app.models import Attempt, Job, JobStatus, RecordingStatus, Segment, utcnow
from proctor_app.services import processing
from proctor_app.services.review import sprite_layout
from tests.support import samples
from tests.support.factories import assign, make_exam, make_user, user_id
from tests.support.finalized import (
    CLIP_S,
    assert_verified_mp4,
    chunk_files,
    decode_everything,
    finalize_now,
    loudness,
    luma_at,
    recording_of,
    top_boxes,
)
from tests.support.pages import sign_in

# Records `ms` milliseconds with MediaRecorder (1 s timeslice), as the exam page does; every blob
# comes back with the wall-clock span it covers.
RECORD_JS = """async ([mime, ms]) => {
  const stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: true});
  const recorder = new MediaRecorder(stream, {mimeType: mime, videoBitsPerSecond: 600000});
  const pieces = [];
  let last = 0;
  recorder.ondataavailable = (e) => { const now = Date.now(); pieces.push([e.data, last, now]); last = now; };
  const started = Date.now();
  last = started;
  recorder.start(1000);
  await new Promise((r) => setTimeout(r, ms));
  const stopped = new Promise((r) => { recorder.onstop = r; });
  recorder.stop();
  await stopped;
  const ended = Date.now();
  stream.getTracks().forEach((t) => t.stop());
  const encoded = await Promise.all(pieces.map(([blob, start, end]) => new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve({b64: reader.result.split(";base64,")[1] || "", start, end});
    reader.readAsDataURL(blob);
  })));
  return {mime: recorder.mimeType, started, ended, pieces: encoded};
}"""
pytestmark = pytest.mark.usefixtures("demo_db")

CHROMIUM_MIME = {"h264": "video/webm;codecs=h264,opus", "vp8": "video/webm;codecs=vp8,opus"}


def _at(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@pytest.fixture(scope="module")
def plain_origin():
    """An empty page on http://127.0.0.1 (a secure context, so getUserMedia works)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=tempfile.mkdtemp(prefix="finalize-origin-"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture
def recorder_page(browser, plain_origin):
    context = browser.new_context(permissions=["camera", "microphone"])
    page = context.new_page()
    page.goto(plain_origin)
    yield page
    context.close()


def _record(page, codec: str, ms: int) -> dict:
    result = page.evaluate(RECORD_JS, [CHROMIUM_MIME[codec], ms])
    assert result["pieces"], "the recorder produced no data"
    return result


def _pieces(recording: dict, shift_s: float = 0.0) -> list[samples.Piece]:
    shift = timedelta(seconds=shift_s)
    return [samples.Piece(base64.b64decode(p["b64"]), _at(p["start"]) + shift, _at(p["end"]) + shift)
            for p in recording["pieces"]]


# ---------------------------------------------------------------------------------------------
# Real browser recordings


@pytest.mark.browser
@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_chromium_recording_becomes_a_verified_seekable_mp4(recorder_page, codec):
    recording = _record(recorder_page, codec, 6000)
    started, ended = _at(recording["started"]), _at(recording["ended"])
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, _pieces(recording), recording["mime"])
    samples.end_attempt(sample, ended)

    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}

    rec = recording_of(sample.attempt_id)
    wall_s = (ended - started).total_seconds()
    info = assert_verified_mp4(rec, wall_s)
    assert rec.gaps == [] and rec.gap_count == 0 and rec.failure_reason == ""
    if codec == "h264":
        # Chromium's own H.264 is copied (x264 would have made High profile), Opus kept.
        assert info["profile"] == "Constrained Baseline" and info["audio_codec"] == "opus"
        assert rec.codec == "h264/opus"
    else:
        assert info["profile"] == "High" and info["audio_codec"] == "aac"
        assert rec.codec == "h264/aac"
    assert abs(info["audio_end"] - info["duration"]) <= 0.5
    # MP4 time 0 is Recording.started_at on the wall clock, within the 1 s tolerance.
    assert abs((rec.started_at - started).total_seconds()) <= 1.0
    # Verified, so the raw chunks are gone (keep_raw_chunks is off by default).
    assert rec.raw_deleted_at is not None
    assert not any(p.exists() for p in chunk_files(rec.id))
    # Poster and hover sprite, named as the review page reads them.
    assert storage.absolute(rec.poster_path).read_bytes()[:3] == b"\xff\xd8\xff"
    assert sprite_layout(rec.sprite_path) == (thumbnails.SPRITE_MIN_INTERVAL_S, thumbnails.SPRITE_WIDTH)
    with av.open(str(storage.absolute(rec.sprite_path))) as sprite:
        tiles = -(-rec.duration_s // thumbnails.SPRITE_MIN_INTERVAL_S)
        assert sprite.streams.video[0].codec_context.width == tiles * thumbnails.SPRITE_WIDTH


@pytest.mark.browser
def test_chromium_h264_grown_during_the_exam_is_the_mp4_at_submit(recorder_page, keep_raw_chunks, tmp_path):
    recording = _record(recorder_page, "h264", 8000)
    started, ended = _at(recording["started"]), _at(recording["ended"])
    sample = samples.start_attempt(started)
    pieces = _pieces(recording)
    half = len(pieces) // 2
    samples.upload_segment(sample, "camera", 0, pieces[:half], recording["mime"])
    rec = recording_of(sample.attempt_id)
    state = growing.grow_recording(rec.id)
    assert state is not None and not state.dead and state.fragments > 0, state
    samples.upload_segment(sample, "camera", 0, pieces, recording["mime"])
    samples.end_attempt(sample, ended)

    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    rec = recording_of(sample.attempt_id)
    assert "moof" in top_boxes(storage.absolute(rec.mp4_path))  # the grown file
    info = assert_verified_mp4(rec, (ended - started).total_seconds())
    assert info["profile"] == "Constrained Baseline" and rec.codec == "h264/opus"
    grown = tmp_path / "grown.mp4"
    grown.write_bytes(storage.absolute(rec.mp4_path).read_bytes())
    # Today's path on the same chunks: the same frames.
    assert finalize_now(sample.attempt_id, force=True) == {"camera": RecordingStatus.completed}
    today = storage.absolute(recording_of(sample.attempt_id).mp4_path)
    assert "moof" not in top_boxes(today)
    assert decode_everything(grown)["frames"] == decode_everything(today)["frames"]


@pytest.mark.browser
def test_offline_period_and_reload_become_black_and_silent_on_the_exam_timeline(recorder_page):
    """Segment 0, then 30 s offline with nothing uploaded, a page reload, segment 1: one MP4 as
    long as the exam, the hole black and silent, and reported as a gap."""
    first = _record(recorder_page, "vp8", 4000)
    recorder_page.reload()
    second = _record(recorder_page, "vp8", 4000)
    offline_s = 30.0
    # The second recorder started `offline_s` after the first stopped (its bytes are real, the
    # 30 s are put on the clock rather than waited for).
    shift_s = (first["ended"] - second["started"]) / 1000 + offline_s
    exam_start = _at(first["started"]) - timedelta(seconds=0.4)
    exam_end = _at(second["ended"]) + timedelta(seconds=shift_s + 0.6)
    sample = samples.start_attempt(exam_start)
    samples.upload_segment(sample, "camera", 0, _pieces(first), first["mime"])
    samples.upload_segment(sample, "camera", 1, _pieces(second, shift_s), second["mime"])
    samples.end_attempt(sample, exam_end)

    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}

    rec = recording_of(sample.attempt_id)
    exam_s = (exam_end - exam_start).total_seconds()
    assert_verified_mp4(rec, exam_s)
    assert rec.started_at == exam_start  # MP4 time = exam time
    hole_start = (_at(first["ended"]) - exam_start).total_seconds()
    hole_end = hole_start + offline_s
    assert len(rec.gaps) == 1 and rec.gap_count == 1
    gap = rec.gaps[0]
    assert gap["cause"] == timeline.CAUSE_NOT_UPLOADED
    assert abs(gap["start_s"] - hole_start) < 1.0 and abs(gap["end_s"] - hole_end) < 1.0
    path = storage.absolute(rec.mp4_path)
    # The fake camera's test pattern is bright; the hole is black, both segments are there.
    assert luma_at(path, 2.0) > 60
    assert luma_at(path, (hole_start + hole_end) / 2) < 20
    assert luma_at(path, hole_end + 2.0) > 60
    assert loudness(path, hole_start + 1, hole_end - 1) < 1e-4
    assert loudness(path, 1.0, hole_start - 0.5) > 1e-3  # the fake microphone beeps


# ---------------------------------------------------------------------------------------------
# Live preview of a recording still coming in (GET .../{stream}/preview on the running app)


@pytest.fixture(scope="module")
def staff_token(app_server) -> dict[str, str]:
    return {email: sessions.login(email, DEMO_PASSWORD)[0]
            for email in ("supervisor@example.com", "alice@example.com")}


def _preview(app_server, token: str | None, link: str) -> httpx.Response:
    cookies = {SESSION_COOKIE: token} if token else {}
    return httpx.get(app_server.url + link, cookies=cookies, timeout=60)


def _media_duration(data: bytes, suffix: str, tmp_path: Path) -> float:
    path = tmp_path / f"preview{suffix}"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        last = 0.0
        for frame in container.decode(video=0):
            last = float(frame.pts * frame.time_base)
    return last


@pytest.mark.browser
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_live_preview_plays_what_was_uploaded_so_far(app_server, staff_token, clip, codec, tmp_path):
    source = clip if codec == "h264" else samples.encode(tmp_path / "clip.webm", CLIP_S, "vp8",
                                                         size=(320, 240), fps=15)
    data = source if isinstance(source, bytes) else source.read_bytes()
    started = utcnow() - timedelta(seconds=2 * CLIP_S + 10)
    sample = samples.start_attempt(started)
    pieces = samples.evenly(samples.cut(data, CLIP_S), started, CLIP_S)
    # Segment 0 whole, then a reload: segment 1 has its first half uploaded so far.
    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME[codec])
    reloaded = [samples.Piece(p.body, p.start + timedelta(seconds=CLIP_S + 1), p.end + timedelta(seconds=CLIP_S + 1))
                for p in pieces]
    samples.upload_segment(sample, "camera", 1, reloaded[:3], samples.MIME[codec])
    supervisor = user_id("supervisor@example.com")
    link = recording_link(supervisor, sample.attempt_id, "camera", "preview")
    suffix = ".mp4" if codec == "h264" else ".webm"

    first = _preview(app_server, staff_token["supervisor@example.com"], link)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == ("video/mp4" if codec == "h264" else "video/webm")
    assert abs(_media_duration(first.content, suffix, tmp_path) - 1.5 * CLIP_S) < 1.5

    # More arrives; a request after the rebuild interval sees it (so it trails by seconds).
    upload_done = time.time()
    samples.upload_segment(sample, "camera", 1, reloaded, samples.MIME[codec])
    time.sleep(max(0.0, preview.MIN_REBUILD_S - (time.time() - upload_done)) + 0.5)
    second = _preview(app_server, staff_token["supervisor@example.com"], link)
    assert second.status_code == 200
    assert abs(_media_duration(second.content, suffix, tmp_path) - 2 * CLIP_S) < 1.5

    # Refusals: no session, a candidate, a link signed for someone else.
    assert _preview(app_server, None, link).status_code == 401
    assert _preview(app_server, staff_token["alice@example.com"], link).status_code == 403
    foreign = recording_link(user_id("alice@example.com"), sample.attempt_id, "camera", "preview")
    assert _preview(app_server, staff_token["supervisor@example.com"], foreign).status_code == 403

    # Once processed, the preview is gone and the MP4 is what there is.
    samples.end_attempt(sample, started + timedelta(seconds=2 * CLIP_S + 1))
    finalize_now(sample.attempt_id)
    assert _preview(app_server, staff_token["supervisor@example.com"], link).status_code == 404
    rec = recording_of(sample.attempt_id)
    assert not list(storage.absolute(rec.mp4_path).parent.glob("camera_preview.*"))


# ---------------------------------------------------------------------------------------------
# The whole way: the exam page records, the candidate reloads and submits, the server processes


@pytest.mark.browser
def test_a_submitted_exam_is_processed_by_the_server_into_a_playable_mp4(app_server, context):
    tag = uuid.uuid4().hex[:8]
    email, password = f"finalize-{tag}@example.com", "finalize-pass-1"
    with session_scope() as db:
        exam = make_exam(db, title=f"Finalize e2e {tag}", duration_minutes=10, recording=True, live_video=False,
                         screen_recording=False, snapshot_interval_s=600,
                         questions=[dict(prompt="Ready?", options=["Yes", "No"])])
        assign(db, exam, make_user(db, email=email, name=f"Finalize {tag}", password=password))
        exam_id = exam.id
    page = context.new_page()
    sign_in(page, email, password)
    page.goto(f"/candidate/exams/{exam_id}")
    page.locator("#consent-checkbox").click()
    page.locator("#consent-accept").click()
    page.locator("#start-exam").click()
    page.locator("#question-prompt").wait_for()
    page.wait_for_timeout(5000)
    page.reload()  # a new recorder: a second segment
    page.locator("#question-prompt").wait_for()
    page.wait_for_timeout(4000)
    page.locator("#submit-exam").click()
    page.locator("#confirm-submit").click()
    page.locator("#done-message").wait_for()

    with session_scope() as db:
        attempt = db.exec(select(Attempt).where(Attempt.exam_id == exam_id)).one()
    # Queued by the submit; run by the server's worker once the page reported its uploads flushed.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with session_scope() as db:
            job = db.exec(select(Job).where(Job.attempt_id == attempt.id, Job.kind == processing.FINALIZE)).one()
        if job.status in (JobStatus.done, JobStatus.failed):
            break
        time.sleep(0.5)
    assert job.status == JobStatus.done, (job.status, job.last_error)
    rec = recording_of(attempt.id)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt.id)
        segments = db.exec(select(Segment).where(Segment.recording_id == rec.id)).all()
    assert rec.status in (RecordingStatus.completed, RecordingStatus.partial), rec.failure_reason
    assert len(segments) == 2
    # The timeline output lasts exactly as long as the exam did.
    assert_verified_mp4(rec, (attempt.ended_at - attempt.started_at).total_seconds())
    assert rec.raw_deleted_at is not None and rec.poster_path and rec.sprite_path

