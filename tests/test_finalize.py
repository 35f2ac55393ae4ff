"""Chunks to a verified MP4: real Chromium recordings (H.264 and VP8), an offline period with a
reload, missing, damaged and garbage chunks, raw-chunk deletion, re-processing, the live preview,
and the whole way from the exam page's submit to the server's processed MP4.

Recordings are stored through the real ingest function; finalize runs with the real ffmpeg and
the results are checked by decoding them with PyAV."""

import asyncio
import base64
import functools
import http.server
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import httpx
import pytest
from sqlmodel import Session, select

from proctor_app.api.media import recording_link
from proctor_app.auth import sessions
from proctor_app.auth.passwords import hash_password
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import get_engine, session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media import finalize, jobs, preview, samples
from proctor_app.media.storage import absolute
from proctor_app.models import (
    Attempt,
    AuditLog,
    Chunk,
    Exam,
    ExamAssignment,
    Job,
    JobStatus,
    Question,
    Recording,
    RecordingStatus,
    Role,
    Segment,
    User,
    utcnow,
)
from proctor_app.services.review import sprite_layout
from proctor_app.services.settings import update_settings
from tests.conftest import login

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


def _finalize(attempt_id: int, force: bool = False) -> dict[str, str]:
    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, finalize.finalize_attempt(attempt_id, force=force)).result()


def _recording(attempt_id: int, stream: str = "camera") -> Recording:
    with session_scope() as db:
        return db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                               Recording.stream == stream)).one()


def _chunk_files(recording_id: int) -> list[Path]:
    with session_scope() as db:
        paths = db.exec(select(Chunk.path).join(Segment, Segment.id == Chunk.segment_id)
                        .where(Segment.recording_id == recording_id)).all()
    return [absolute(p) for p in paths]


def _top_boxes(path: Path) -> list[str]:
    return [kind for kind, _, _ in finalize._top_level_boxes(path)]


def _decode_everything(path: Path) -> dict:
    """Decode every frame of every track; returns the last times, codecs and a luma sampler."""
    info = {"video_end": 0.0, "audio_end": 0.0, "frames": 0}
    with av.open(str(path)) as container:
        info["duration"] = container.duration / 1e6
        video = container.streams.video[0]
        info["video_codec"], info["profile"] = video.codec_context.name, video.codec_context.profile
        audio = container.streams.audio[0] if container.streams.audio else None
        info["audio_codec"] = audio.codec_context.name if audio else ""
        for frame in container.decode(*container.streams):
            t = float(frame.pts * frame.time_base)
            if isinstance(frame, av.VideoFrame):
                info["frames"] += 1
                info["video_end"] = max(info["video_end"], t)
            else:
                info["audio_end"] = max(info["audio_end"], t + frame.samples / frame.sample_rate)
    return info


def _luma_at(path: Path, t: float) -> float:
    """Mean brightness (0..255) of the frame shown at `t`."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(int(max(0.0, t - 3) / stream.time_base), stream=stream, backward=True)
        shown = None
        for frame in container.decode(stream):
            if float(frame.pts * frame.time_base) > t + 1e-3:
                break
            shown = frame
    plane = bytes(shown.planes[0])
    return sum(plane[::61]) / len(plane[::61])


def _loudness(path: Path, start: float, end: float) -> float:
    """Mean absolute sample value (0..1) of the audio between `start` and `end`."""
    total, count = 0.0, 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            t = float(frame.pts * frame.time_base)
            if start <= t and t + frame.samples / frame.sample_rate <= end:
                values = memoryview(bytes(frame.planes[0])).cast("f")
                total += sum(abs(v) for v in values[::7])
                count += len(values[::7])
    return total / max(1, count)


def _assert_verified_mp4(rec: Recording, expected_s: float) -> dict:
    path = absolute(rec.mp4_path)
    boxes = _top_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert rec.size_bytes == path.stat().st_size
    assert rec.sha256 == finalize.sha256_of(path)
    info = _decode_everything(path)
    assert abs(info["duration"] - expected_s) <= 0.5, (info["duration"], expected_s)
    assert abs(rec.duration_s - info["duration"]) < 0.01
    # Decoded to the end: the last frame is within a frame or two of the end.
    assert info["video_end"] >= info["duration"] - 0.5, info
    assert info["video_codec"] == "h264"
    return info


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

    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.completed}

    rec = _recording(sample.attempt_id)
    wall_s = (ended - started).total_seconds()
    info = _assert_verified_mp4(rec, wall_s)
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
    assert not any(p.exists() for p in _chunk_files(rec.id))
    # Poster and hover sprite, named as the review page reads them.
    assert absolute(rec.poster_path).read_bytes()[:3] == b"\xff\xd8\xff"
    assert sprite_layout(rec.sprite_path) == (finalize.SPRITE_MIN_INTERVAL_S, finalize.SPRITE_WIDTH)
    with av.open(str(absolute(rec.sprite_path))) as sprite:
        tiles = -(-rec.duration_s // finalize.SPRITE_MIN_INTERVAL_S)
        assert sprite.streams.video[0].codec_context.width == tiles * finalize.SPRITE_WIDTH


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

    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.partial}

    rec = _recording(sample.attempt_id)
    exam_s = (exam_end - exam_start).total_seconds()
    _assert_verified_mp4(rec, exam_s)
    assert rec.started_at == exam_start  # MP4 time = exam time
    hole_start = (_at(first["ended"]) - exam_start).total_seconds()
    hole_end = hole_start + offline_s
    assert len(rec.gaps) == 1 and rec.gap_count == 1
    gap = rec.gaps[0]
    assert gap["cause"] == finalize.CAUSE_NOT_UPLOADED
    assert abs(gap["start_s"] - hole_start) < 1.0 and abs(gap["end_s"] - hole_end) < 1.0
    path = absolute(rec.mp4_path)
    # The fake camera's test pattern is bright; the hole is black, both segments are there.
    assert _luma_at(path, 2.0) > 60
    assert _luma_at(path, (hole_start + hole_end) / 2) < 20
    assert _luma_at(path, hole_end + 2.0) > 60
    assert _loudness(path, hole_start + 1, hole_end - 1) < 1e-4
    assert _loudness(path, 1.0, hole_start - 0.5) > 1e-3  # the fake microphone beeps


# ---------------------------------------------------------------------------------------------
# Damaged input: partial with the gap listed, never a crash

CLIP_S = 18
EXAM_S = CLIP_S + 0.3  # _stored's attempts start 0.3 s before the recording


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """An 18 s H.264 recording as the browser would make it (keyframe every 2 s)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    return samples.encode(path, CLIP_S, "h264", size=(320, 240), fps=15).read_bytes()


def _stored(clip: bytes, lose: tuple[int, ...] = (), garbage: tuple[int, ...] = (),
            lead_s: float = 0.3) -> samples.SampleAttempt:
    """The clip in 6 pieces of ~3 s (some lost or replaced by junk), in an attempt that started
    `lead_s` before the recording and ended with it."""
    started = utcnow() - timedelta(seconds=CLIP_S + 10)
    sample = samples.start_attempt(started)
    bodies = samples.cut(clip, CLIP_S)
    bodies = [None if i in lose else (bytes(len(b)) if i in garbage else b) for i, b in enumerate(bodies)]
    samples.upload_segment(sample, "camera", 0, samples.evenly(bodies, started + timedelta(seconds=lead_s),
                                                               CLIP_S), samples.MIME["h264"])
    samples.end_attempt(sample, started + timedelta(seconds=lead_s + CLIP_S))
    return sample


def test_clean_h264_is_copied_not_encoded(clip):
    sample = _stored(clip)
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.completed}
    info = _assert_verified_mp4(_recording(sample.attempt_id), CLIP_S)
    assert info["profile"] == "Constrained Baseline"  # the source's; re-encoding writes High


def test_missing_chunks_give_partial_with_the_gap(clip):
    sample = _stored(clip, lose=(2, 3))
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = _recording(sample.attempt_id)
    _assert_verified_mp4(rec, EXAM_S)
    assert [g["cause"] for g in rec.gaps] == [finalize.CAUSE_MISSING]
    # Pieces 2 and 3 were about 6-12 s of the recording (+0.3 s lead); demuxing resumes at the
    # next cluster, so the gap may reach a little further.
    assert 5.0 <= rec.gaps[0]["start_s"] <= 7.0 and 12.0 <= rec.gaps[0]["end_s"] <= 15.5
    assert _luma_at(absolute(rec.mp4_path), (rec.gaps[0]["start_s"] + rec.gaps[0]["end_s"]) / 2) < 20


def test_chunk_damaged_on_disk_is_left_out_and_reported(clip):
    sample = _stored(clip)
    rec = _recording(sample.attempt_id)
    damaged = sorted(_chunk_files(rec.id))[2]
    damaged.write_bytes(b"\x00" * damaged.stat().st_size)  # same size, other bytes
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = _recording(sample.attempt_id)
    _assert_verified_mp4(rec, EXAM_S)
    assert [g["cause"] for g in rec.gaps] == [finalize.CAUSE_DAMAGED]


def test_garbage_uploaded_as_a_chunk_is_reported_undecodable(clip):
    sample = _stored(clip, garbage=(3,))
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = _recording(sample.attempt_id)
    _assert_verified_mp4(rec, EXAM_S)
    assert [g["cause"] for g in rec.gaps] == [finalize.CAUSE_UNDECODABLE]


def test_segment_without_its_first_chunk_is_a_gap_the_others_still_play(clip):
    started = utcnow() - timedelta(seconds=60)
    sample = samples.start_attempt(started)
    bodies = samples.cut(clip, CLIP_S)
    samples.upload_segment(sample, "camera", 0, samples.evenly(bodies, started, CLIP_S), samples.MIME["h264"])
    second = started + timedelta(seconds=CLIP_S + 2)
    samples.upload_segment(sample, "camera", 1, samples.evenly([None, *bodies[1:]], second, CLIP_S),
                           samples.MIME["h264"])
    samples.end_attempt(sample, second + timedelta(seconds=CLIP_S))
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = _recording(sample.attempt_id)
    _assert_verified_mp4(rec, 2 * CLIP_S + 2)
    assert [g["cause"] for g in rec.gaps] == [finalize.CAUSE_NO_HEADER]
    assert abs(rec.gaps[0]["start_s"] - CLIP_S) < 1.0 and rec.gaps[0]["end_s"] == pytest.approx(2 * CLIP_S + 2, abs=0.1)


def test_recording_without_any_media_fails_with_its_reason():
    started = utcnow() - timedelta(seconds=30)
    sample = samples.start_attempt(started)  # the token made the (empty) recording row
    samples.end_attempt(sample, started + timedelta(seconds=20))
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.failed}
    rec = _recording(sample.attempt_id)
    assert rec.failure_reason == finalize.CAUSE_NO_MEDIA and rec.mp4_path == ""
    assert rec.gaps == [{"start_s": 0.0, "end_s": 20.0, "cause": finalize.CAUSE_NO_MEDIA}]


def test_sparse_keyframes_are_reencoded_to_stay_seekable(tmp_path):
    seconds = 24
    data = samples.encode(tmp_path / "sparse.mkv", seconds, "h264", size=(320, 240), fps=15,
                          keyframe_s=30).read_bytes()
    started = utcnow() - timedelta(seconds=40)
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, samples.evenly(samples.cut(data, seconds), started, seconds),
                           samples.MIME["h264"])
    samples.end_attempt(sample, started + timedelta(seconds=seconds))
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.completed}
    rec = _recording(sample.attempt_id)
    info = _assert_verified_mp4(rec, seconds)
    assert info["profile"] == "High" and info["audio_codec"] == "aac"
    with av.open(str(absolute(rec.mp4_path))) as container:
        keyframes = [float(p.pts * p.time_base) for p in container.demux(video=0)
                     if p.pts is not None and p.is_keyframe]
    gaps = [b - a for a, b in zip(keyframes, keyframes[1:])]
    assert max(gaps) <= finalize.GOP_S + 0.1


# ---------------------------------------------------------------------------------------------
# Raw chunks kept by the setting; re-processing


@pytest.fixture
def keep_raw_chunks():
    with session_scope() as db:
        update_settings(db, {"keep_raw_chunks": True}, None)
    yield
    with session_scope() as db:
        update_settings(db, {"keep_raw_chunks": False}, None)


def test_kept_raw_chunks_allow_reprocessing_into_the_same_single_output(clip, keep_raw_chunks):
    sample = _stored(clip, lose=(4,))
    _finalize(sample.attempt_id)
    first = _recording(sample.attempt_id)
    assert first.raw_deleted_at is None and all(p.exists() for p in _chunk_files(first.id))

    with Session(get_engine()) as db:
        job = jobs.request_reprocess(db, sample.attempt_id, user_id=None)
        db.flush()
        assert db.exec(select(AuditLog).where(AuditLog.action == "reprocess_requested",
                                              AuditLog.target == f"attempt:{sample.attempt_id}")).first()
        assert job.payload == {"force": True}
        # Never committed: the running app's worker must not run it beside the direct calls below.
        db.rollback()
    # Without force a finished recording is left as it is; with force it is made again.
    assert _finalize(sample.attempt_id) == {"camera": RecordingStatus.partial}
    assert _recording(sample.attempt_id).sha256 == first.sha256
    assert _finalize(sample.attempt_id, force=True) == {"camera": RecordingStatus.partial}
    again = _recording(sample.attempt_id)
    assert again.mp4_path == first.mp4_path and again.gaps == first.gaps
    folder = absolute(again.mp4_path).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [Path(again.mp4_path).name, Path(again.poster_path).name, Path(again.sprite_path).name])


def test_reprocessing_after_the_raw_chunks_were_deleted_is_refused_clearly(clip):
    sample = _stored(clip)
    _finalize(sample.attempt_id)
    assert _recording(sample.attempt_id).raw_deleted_at is not None
    with pytest.raises(finalize.FinalizeError, match="raw chunks .* deleted"):
        _finalize(sample.attempt_id, force=True)
    assert _recording(sample.attempt_id).status == RecordingStatus.completed


# ---------------------------------------------------------------------------------------------
# Live preview of a recording still coming in (GET .../{stream}/preview on the running app)


@pytest.fixture(scope="module")
def staff_token(app_server) -> dict[str, str]:
    return {email: sessions.login(email, DEMO_PASSWORD)[0]
            for email in ("supervisor@example.com", "alice@example.com")}


def _user_id(email: str) -> int:
    with session_scope() as db:
        return db.exec(select(User.id).where(User.email == email)).one()


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
    supervisor = _user_id("supervisor@example.com")
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
    foreign = recording_link(_user_id("alice@example.com"), sample.attempt_id, "camera", "preview")
    assert _preview(app_server, staff_token["supervisor@example.com"], foreign).status_code == 403

    # Once processed, the preview is gone and the MP4 is what there is.
    samples.end_attempt(sample, started + timedelta(seconds=2 * CLIP_S + 1))
    _finalize(sample.attempt_id)
    assert _preview(app_server, staff_token["supervisor@example.com"], link).status_code == 404
    rec = _recording(sample.attempt_id)
    assert not list(absolute(rec.mp4_path).parent.glob("camera_preview.*"))


# ---------------------------------------------------------------------------------------------
# The whole way: the exam page records, the candidate reloads and submits, the server processes


@pytest.mark.browser
def test_a_submitted_exam_is_processed_by_the_server_into_a_playable_mp4(app_server, context):
    tag = uuid.uuid4().hex[:8]
    email, password = f"finalize-{tag}@example.com", "finalize-pass-1"
    with session_scope() as db:
        exam = Exam(title=f"Finalize e2e {tag}", duration_minutes=10, recording=True, live_video=False,
                    screen_recording=False, snapshot_interval_s=600)
        candidate = User(email=email, name=f"Finalize {tag}", role=Role.candidate,
                         password_hash=hash_password(password))
        db.add(exam)
        db.add(candidate)
        db.flush()
        db.add(ExamAssignment(exam_id=exam.id, user_id=candidate.id))
        db.add(Question(exam_id=exam.id, prompt="Ready?", options=["Yes", "No"]))
        exam_id = exam.id
    page = context.new_page()
    login(page, email, password)
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
            job = db.exec(select(Job).where(Job.attempt_id == attempt.id, Job.kind == jobs.FINALIZE)).one()
        if job.status in (JobStatus.done, JobStatus.failed):
            break
        time.sleep(0.5)
    assert job.status == JobStatus.done, (job.status, job.last_error)
    rec = _recording(attempt.id)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt.id)
        segments = db.exec(select(Segment).where(Segment.recording_id == rec.id)).all()
    assert rec.status in (RecordingStatus.completed, RecordingStatus.partial), rec.failure_reason
    assert len(segments) == 2
    # The timeline output lasts exactly as long as the exam did.
    _assert_verified_mp4(rec, (attempt.ended_at - attempt.started_at).total_seconds())
    assert rec.raw_deleted_at is not None and rec.poster_path and rec.sprite_path
