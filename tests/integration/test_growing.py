"""The MP4 of a clean H.264 recording grown during the exam (media/processing/growing.py): it plays
while the exam goes on, the live preview serves it, and submit turns it into the same verified
MP4 as today's stream copy; a reload, a gap or VP8 fall back to today's path; a step killed
mid-append is repaired by the next one. Real ffmpeg, real chunk files, the real database."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import pytest
from starlette.testclient import TestClient

from proctor_app import platform, runtime
from proctor_app.api import build_api
from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.jobs.background import BACKGROUND_NICE, BackgroundProcesses
from proctor_app.media.jobs.errors import Defer
from proctor_app.media.playback.links import recording_link
from proctor_app.media.processing import growing
from proctor_app.media.processing.matroska import cluster_starts, header_length
from proctor_app.media.processing.mp4 import split_fragments
from proctor_app.media.processing.preview import MIN_REBUILD_S, ensure_preview
from proctor_app.media.storage import storage
from proctor_app.media.storage.layout import processed_dir
from proctor_app.models import RecordingStatus, utcnow
from proctor_app.services import processing
from tests.support import samples
from tests.support.clock import FakeClock
from tests.support.factories import user_id
from tests.support.finalized import CLIP_S, assert_verified_mp4, finalize_now, recording_of, top_boxes
from tests.support.ladders import job_context, ladder_here, run_here

pytestmark = pytest.mark.usefixtures("demo_db")


def _begin(clip: bytes, first: int, codec: str = "h264") -> tuple[samples.SampleAttempt, list[samples.Piece]]:
    """An attempt in progress whose recording (the clip in ~3 s pieces) has its first `first`
    pieces uploaded; returns it and every piece."""
    started = utcnow() - timedelta(seconds=CLIP_S + 10)
    sample = samples.start_attempt(started)
    pieces = samples.evenly(samples.cut(clip, CLIP_S), started, CLIP_S)
    samples.upload_segment(sample, "camera", 0, pieces[:first], samples.MIME[codec])
    return sample, pieces


def _files(sample: samples.SampleAttempt) -> tuple[Path, Path]:
    out = processed_dir(sample.attempt_id, sample.started_at)
    return storage.absolute(growing.growing_path(out, "camera")), storage.absolute(growing.state_path(out, "camera"))


def _grow(sample: samples.SampleAttempt) -> growing.GrowState | None:
    return growing.grow_recording(recording_of(sample.attempt_id).id)


def _packets(path: Path) -> dict[str, list[tuple[float, str]]]:
    """Per track type, each packet's presentation time (s) and the MD5 of its bytes."""
    found = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size:
                found.setdefault(packet.stream.type, []).append(
                    (float(packet.pts * packet.time_base), hashlib.md5(bytes(packet)).hexdigest()))
    return found


def _duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / 1e6


def _assert_same_content(grown: Path, today: Path) -> None:
    """The same packets, in order, on the same timeline up to one shift for every track (the
    grown file starts where the source's first sample is, Opus pre-skip included)."""
    a, b = _packets(grown), _packets(today)
    assert a.keys() == b.keys() == {"video", "audio"}
    shifts = set()
    for kind in a:
        assert [h for _, h in a[kind]] == [h for _, h in b[kind]], kind
        shifts |= {round(x - y, 3) for (x, _), (y, _) in zip(a[kind], b[kind])}
    assert len(shifts) == 1 and abs(shifts.pop()) < 0.05, shifts
    assert abs(_duration_s(grown) - _duration_s(today)) < 0.05


def test_grown_during_the_exam_plays_and_submit_gives_the_same_mp4_as_today(clip, keep_raw_chunks, tmp_path):
    sample, pieces = _begin(clip, 3)
    state = _grow(sample)
    mp4, state_file = _files(sample)
    assert state is not None and not state.dead and mp4.stat().st_size == state.size
    partial = _packets(mp4)  # plays while the exam goes on: both tracks, a few seconds of each
    assert 3 < len(partial["video"]) and partial["video"][-1][0] < CLIP_S / 2 + 1

    samples.upload_segment(sample, "camera", 0, pieces[:5], samples.MIME["h264"])  # 0-2 again: kept as they are
    later = _grow(sample)
    assert later.size > state.size and later.next_seq > state.next_seq
    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME["h264"])
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))

    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    rec = recording_of(sample.attempt_id)
    assert_verified_mp4(rec, CLIP_S)
    assert not mp4.exists() and not state_file.exists()
    assert rec.codec == "h264/opus" and rec.gap_count == 0
    assert "moof" in top_boxes(storage.absolute(rec.mp4_path))  # the grown file itself
    shutil.copy(storage.absolute(rec.mp4_path), tmp_path / "grown.mp4")
    ladder_here(sample.attempt_id)  # the HLS ladder is made from it as from any MP4
    master = storage.absolute(recording_of(sample.attempt_id).hls_path)
    assert "240p.m3u8" in master.read_text()

    # Today's path on the same chunks (nothing grown: a stream copy of all of them).
    assert finalize_now(sample.attempt_id, force=True) == {"camera": RecordingStatus.completed}
    today = recording_of(sample.attempt_id)
    assert "moof" not in top_boxes(storage.absolute(today.mp4_path))
    _assert_same_content(tmp_path / "grown.mp4", storage.absolute(today.mp4_path))
    assert abs(rec.duration_s - today.duration_s) < 0.05


def test_without_saved_hash_states_the_grown_mp4_is_hashed_whole_at_submit(clip, monkeypatch):
    monkeypatch.setattr(platform, "rehashes", None)  # a system rehashes has no wheel for
    sample, pieces = _begin(clip, 3)
    assert _grow(sample).sha256 is None
    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME["h264"])
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    rec = recording_of(sample.attempt_id)
    assert "moof" in top_boxes(storage.absolute(rec.mp4_path))
    assert_verified_mp4(rec, CLIP_S)  # its SHA-256 is the file's


def test_a_reload_gives_up_growing_and_today_s_path_makes_the_mp4(clip):
    sample, pieces = _begin(clip, 3)
    assert not _grow(sample).dead
    # The recorder started again: a new segment, a stream of its own.
    later = samples.evenly(samples.cut(clip, CLIP_S), sample.started_at + timedelta(seconds=CLIP_S / 2), CLIP_S / 2)
    samples.upload_segment(sample, "camera", 1, later, samples.MIME["h264"])
    state = _grow(sample)
    assert "segment" in state.dead
    mp4, _ = _files(sample)
    assert not mp4.exists()
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))
    assert finalize_now(sample.attempt_id)["camera"] in (RecordingStatus.completed, RecordingStatus.partial)
    assert_verified_mp4(recording_of(sample.attempt_id), CLIP_S)
    assert [p.name for p in mp4.parent.glob("camera.growing*")] == []


def test_a_missing_chunk_gives_up_at_submit_and_the_gap_is_reported(clip):
    sample, pieces = _begin(clip, 2)
    assert not _grow(sample).dead
    samples.upload_segment(sample, "camera", 0, [p if i != 3 else samples.Piece(None, p.start, p.end)
                                                 for i, p in enumerate(pieces)], samples.MIME["h264"])
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = recording_of(sample.attempt_id)
    assert_verified_mp4(rec, CLIP_S)
    assert rec.gap_count == 1


def test_vp8_is_not_grown(tmp_path):
    vp8 = samples.encode(tmp_path / "vp8.webm", CLIP_S, "vp8", size=(320, 240), fps=15).read_bytes()
    sample, _ = _begin(vp8, 3, codec="vp8")
    state = _grow(sample)
    assert state.dead.startswith("not H.264") and not _files(sample)[0].exists()


def test_a_step_killed_mid_append_is_cut_back_and_submit_still_verifies(clip, keep_raw_chunks, tmp_path):
    sample, pieces = _begin(clip, 3)
    state = _grow(sample)
    mp4, state_file = _files(sample)
    # What a worker killed while appending leaves: part of a fragment after what the state names.
    with open(mp4, "ab") as f:
        f.write(mp4.read_bytes()[state.init_size:state.init_size + 5000])
    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME["h264"])
    assert _grow(sample).size == mp4.stat().st_size  # cut back, then the new fragments
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    shutil.copy(storage.absolute(recording_of(sample.attempt_id).mp4_path), tmp_path / "grown.mp4")
    assert finalize_now(sample.attempt_id, force=True) == {"camera": RecordingStatus.completed}
    _assert_same_content(tmp_path / "grown.mp4", storage.absolute(recording_of(sample.attempt_id).mp4_path))


# A worker process that dies the moment a step's fragments are written, before fsync and state.
KILLED_STEP = """
import os, signal, sys
from proctor_app.media.processing import growing
growing.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
growing.grow_recording(int(sys.argv[1]))
"""


def test_a_worker_killed_mid_step_leaves_what_the_next_step_repairs(clip, keep_raw_chunks, tmp_path):
    sample, pieces = _begin(clip, 3)
    state = _grow(sample)
    mp4, _ = _files(sample)
    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME["h264"])
    killed = subprocess.run([sys.executable, "-c", KILLED_STEP, str(recording_of(sample.attempt_id).id)],
                            cwd=Path(__file__).parents[2], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert mp4.stat().st_size > state.size  # its fragments are there, its state is not
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    rec = recording_of(sample.attempt_id)
    assert "moof" in top_boxes(storage.absolute(rec.mp4_path))
    assert_verified_mp4(rec, CLIP_S)
    shutil.copy(storage.absolute(rec.mp4_path), tmp_path / "grown.mp4")
    assert finalize_now(sample.attempt_id, force=True) == {"camera": RecordingStatus.completed}
    _assert_same_content(tmp_path / "grown.mp4", storage.absolute(recording_of(sample.attempt_id).mp4_path))


def test_a_first_step_killed_before_its_state_begins_again(clip):
    sample, _ = _begin(clip, 3)
    mp4, state_file = _files(sample)
    mp4.parent.mkdir(parents=True, exist_ok=True)
    mp4.write_bytes(b"\0" * 1000)  # a file without its state
    state = _grow(sample)
    assert not state.dead and mp4.stat().st_size == state.size
    assert len(_packets(mp4)["video"]) > 3


async def test_the_preview_is_the_growing_file(clip):
    sample, pieces = _begin(clip, 3)
    _grow(sample)
    clock = FakeClock(datetime.now(timezone.utc))
    first = await ensure_preview(sample.attempt_id, "camera", clock)
    assert first.path.endswith("camera.growing.mp4")
    partial_s = _duration_s(storage.absolute(first.path))
    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME["h264"])
    assert (await ensure_preview(sample.attempt_id, "camera", clock)).built_at == first.built_at  # not yet
    clock.advance(MIN_REBUILD_S + 1)
    later = await ensure_preview(sample.attempt_id, "camera", clock)
    assert later.path == first.path and later.built_at > first.built_at
    assert _duration_s(storage.absolute(later.path)) > partial_s + 3
    assert not list(storage.absolute(first.path).parent.glob("camera_preview.*"))  # nothing rebuilt


def test_the_preview_route_serves_only_whole_fragments(clip):
    """A step may be appending to the growing file while a reviewer watches: the preview serves
    the fragments its state names, not the bytes past them."""
    sample, _ = _begin(clip, 6)
    state = _grow(sample)
    grown, _ = _files(sample)
    with open(grown, "ab") as f:
        f.write(b"\x00\x00\x10\x00moof" + bytes(300))  # a fragment still being written
    supervisor = "supervisor@example.com"
    cookie = f"{SESSION_COOKIE}={sessions.login(supervisor, DEMO_PASSWORD)[0]}"
    with TestClient(build_api(), base_url="http://proctor.test") as client:
        response = client.get(recording_link(user_id(supervisor), sample.attempt_id, "camera", "preview"),
                              headers={"Cookie": cookie})
    assert response.status_code == 200, response.text
    assert int(response.headers["content-length"]) == state.size == len(response.content)
    assert response.content == grown.read_bytes()[:state.size]


def test_the_grow_job_steps_while_the_exam_goes_on_and_ends_with_it(clip):
    sample, _ = _begin(clip, 3)
    with pytest.raises(Defer):
        run_here(processing.run_grow(job_context(sample.attempt_id, processing.GROW)))
    assert _files(sample)[0].exists()
    samples.end_attempt(sample, sample.started_at + timedelta(seconds=CLIP_S))
    run_here(processing.run_grow(job_context(sample.attempt_id, processing.GROW)))  # done: no Defer


def test_the_app_s_grow_job_steps_in_a_background_process_at_a_lower_priority(clip):
    """The grow handler that job_handlers builds with a pool (as runtime.job_worker does) grows
    the MP4 in a spawned process at nice +10, on the same database and storage, not in a thread."""
    pool = _RecordedProcesses(setup=runtime.set_up_process)
    try:
        child_pid, child_nice = run_here(pool.run(_pid_and_nice))
        assert child_pid != os.getpid() and child_nice == os.nice(0) + BACKGROUND_NICE
        sample, _ = _begin(clip, 3)
        grow_job = processing.job_handlers(runtime.settings, pool)[processing.GROW]
        with pytest.raises(Defer):
            run_here(grow_job.run(job_context(sample.attempt_id, processing.GROW)))
        assert pool.ran == ["_pid_and_nice", "grow_recording"]
        # Alive, with fragments, in the test's storage: the process used the same database and folder.
        assert _files(sample)[0].exists()
        assert growing.growing_file(processed_dir(sample.attempt_id, sample.started_at), "camera") is not None
        assert run_here(pool.run(_pid_and_nice))[0] == child_pid  # the same process, kept
    finally:
        pool.close()


def test_a_background_process_that_dies_fails_its_call_and_the_next_starts_a_new_one():
    pool = BackgroundProcesses()
    try:
        first_pid = run_here(pool.run(_pid_and_nice))[0]
        with pytest.raises(BrokenProcessPool):
            run_here(pool.run(os.kill, first_pid, signal.SIGKILL))
        assert run_here(pool.run(_pid_and_nice))[0] not in (first_pid, os.getpid())
    finally:
        pool.close()


class _RecordedProcesses(BackgroundProcesses):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ran: list[str] = []

    async def run(self, function, *args):
        self.ran.append(function.__name__)
        return await super().run(function, *args)


def _pid_and_nice() -> tuple[int, int]:
    return os.getpid(), os.nice(0)


def test_steps_beginning_anywhere_in_a_gop_give_the_ffmpeg_command_s_fragments(tmp_path, monkeypatch):
    """A step copies in this process, or with the ffmpeg command when packets before its first
    keyframe come without a decode time (ffmpeg guesses one): either way the same fragments as
    the command alone. Clusters every half second, keyframes every 2 s: steps begin mid-GOP."""
    data = samples.encode(tmp_path / "clusters.mkv", 12, "h264", cluster_ms=500).read_bytes()
    header = data[:header_length(data)]
    starts = sorted({cluster_starts(data[:len(data) * k // 24], len(header)).last for k in range(2, 25)})

    def command_only(payload: bytes) -> bytes:
        def refuse(*_):
            raise growing._NeedsFfmpeg
        with monkeypatch.context() as patched:
            patched.setattr(growing, "_copy_in_process", refuse)
            return growing._remux(payload, 0.0)

    without_decode_times = 0
    for begin, end in zip(starts, starts[3:]):
        payload = header + data[begin:end]
        with av.open(growing._Stream(payload), format="matroska") as source:
            without_decode_times += any(p.dts is None and p.size for p in source.demux())
        assert split_fragments(growing._remux(payload, 0.0))[1] == split_fragments(command_only(payload))[1]
    assert len(starts) > 10 and without_decode_times, (len(starts), without_decode_times)
