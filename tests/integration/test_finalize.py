"""Chunks to a verified MP4, without a browser: MediaRecorder-like recordings made with ffmpeg
(missing, damaged and garbage chunks, sparse keyframes, no media at all), raw-chunk deletion and
re-processing. (Real Chromium recordings, the live preview and the exam page's submit: in
tests/browser/test_finalize_chromium.py.)

Recordings are stored through the real ingest function; finalize runs with the real ffmpeg and
the results are checked by decoding them with PyAV."""

from datetime import timedelta
from pathlib import Path

import av
import pytest
from sqlmodel import Session, select

from proctor_app.db import get_engine
from proctor_app.media.evidence.manifest import manifest_path
from proctor_app.media.processing import graphs, timeline
from proctor_app.media.storage import storage
from proctor_app.models import AuditLog, RecordingStatus, utcnow
from proctor_app.services import processing
from tests.support import samples
from tests.support.finalized import (
    CLIP_S,
    assert_verified_mp4,
    chunk_files,
    finalize_now,
    luma_at,
    recording_of,
)

pytestmark = pytest.mark.usefixtures("demo_db")


# ---------------------------------------------------------------------------------------------
# Damaged input: partial with the gap listed, never a crash

EXAM_S = CLIP_S + 0.3  # _stored's attempts start 0.3 s before the recording


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
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    info = assert_verified_mp4(recording_of(sample.attempt_id), CLIP_S)
    assert info["profile"] == "Constrained Baseline"  # the source's; re-encoding writes High


def test_missing_chunks_give_partial_with_the_gap(clip):
    sample = _stored(clip, lose=(2, 3))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = recording_of(sample.attempt_id)
    assert_verified_mp4(rec, EXAM_S)
    assert [g["cause"] for g in rec.gaps] == [timeline.CAUSE_MISSING]
    # Pieces 2 and 3 were about 6-12 s of the recording (+0.3 s lead); demuxing resumes at the
    # next cluster, so the gap may reach a little further.
    assert 5.0 <= rec.gaps[0]["start_s"] <= 7.0 and 12.0 <= rec.gaps[0]["end_s"] <= 15.5
    assert luma_at(storage.absolute(rec.mp4_path), (rec.gaps[0]["start_s"] + rec.gaps[0]["end_s"]) / 2) < 20


def test_chunk_damaged_on_disk_is_left_out_and_reported(clip):
    sample = _stored(clip)
    rec = recording_of(sample.attempt_id)
    damaged = sorted(chunk_files(rec.id))[2]
    damaged.write_bytes(b"\x00" * damaged.stat().st_size)  # same size, other bytes
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = recording_of(sample.attempt_id)
    assert_verified_mp4(rec, EXAM_S)
    assert [g["cause"] for g in rec.gaps] == [timeline.CAUSE_DAMAGED]


def test_garbage_uploaded_as_a_chunk_is_reported_undecodable(clip):
    sample = _stored(clip, garbage=(3,))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = recording_of(sample.attempt_id)
    assert_verified_mp4(rec, EXAM_S)
    assert [g["cause"] for g in rec.gaps] == [timeline.CAUSE_UNDECODABLE]


def test_segment_without_its_first_chunk_is_a_gap_the_others_still_play(clip):
    started = utcnow() - timedelta(seconds=60)
    sample = samples.start_attempt(started)
    bodies = samples.cut(clip, CLIP_S)
    samples.upload_segment(sample, "camera", 0, samples.evenly(bodies, started, CLIP_S), samples.MIME["h264"])
    second = started + timedelta(seconds=CLIP_S + 2)
    samples.upload_segment(sample, "camera", 1, samples.evenly([None, *bodies[1:]], second, CLIP_S),
                           samples.MIME["h264"])
    samples.end_attempt(sample, second + timedelta(seconds=CLIP_S))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = recording_of(sample.attempt_id)
    assert_verified_mp4(rec, 2 * CLIP_S + 2)
    assert [g["cause"] for g in rec.gaps] == [timeline.CAUSE_NO_HEADER]
    assert abs(rec.gaps[0]["start_s"] - CLIP_S) < 1.0 and rec.gaps[0]["end_s"] == pytest.approx(2 * CLIP_S + 2, abs=0.1)


def test_recording_without_any_media_fails_with_its_reason():
    started = utcnow() - timedelta(seconds=30)
    sample = samples.start_attempt(started)  # the token made the (empty) recording row
    samples.end_attempt(sample, started + timedelta(seconds=20))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.failed}
    rec = recording_of(sample.attempt_id)
    assert rec.failure_reason == timeline.CAUSE_NO_MEDIA and rec.mp4_path == ""
    assert rec.gaps == [{"start_s": 0.0, "end_s": 20.0, "cause": timeline.CAUSE_NO_MEDIA}]


def test_sparse_keyframes_are_reencoded_to_stay_seekable(tmp_path):
    seconds = 24
    data = samples.encode(tmp_path / "sparse.mkv", seconds, "h264", size=(320, 240), fps=15,
                          keyframe_s=30).read_bytes()
    started = utcnow() - timedelta(seconds=40)
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, samples.evenly(samples.cut(data, seconds), started, seconds),
                           samples.MIME["h264"])
    samples.end_attempt(sample, started + timedelta(seconds=seconds))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.completed}
    rec = recording_of(sample.attempt_id)
    info = assert_verified_mp4(rec, seconds)
    assert info["profile"] == "High" and info["audio_codec"] == "aac"
    with av.open(str(storage.absolute(rec.mp4_path))) as container:
        keyframes = [float(p.pts * p.time_base) for p in container.demux(video=0)
                     if p.pts is not None and p.is_keyframe]
    gaps = [b - a for a, b in zip(keyframes, keyframes[1:])]
    assert max(gaps) <= graphs.GOP_S + 0.1


# ---------------------------------------------------------------------------------------------
# Raw chunks kept by the setting; re-processing


def test_kept_raw_chunks_allow_reprocessing_into_the_same_single_output(clip, keep_raw_chunks):
    sample = _stored(clip, lose=(4,))
    finalize_now(sample.attempt_id)
    first = recording_of(sample.attempt_id)
    assert first.raw_deleted_at is None and all(p.exists() for p in chunk_files(first.id))

    with Session(get_engine()) as db:
        job = processing.request_reprocess(db, sample.attempt_id, user_id=None)
        db.flush()
        assert db.exec(select(AuditLog).where(AuditLog.action == "reprocess_requested",
                                              AuditLog.target == f"attempt:{sample.attempt_id}")).first()
        assert job.payload == {"force": True}
        # Never committed: the running app's worker must not run it beside the direct calls below.
        db.rollback()
    # Without force a finished recording is left as it is; with force it is made again.
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    assert recording_of(sample.attempt_id).sha256 == first.sha256
    assert finalize_now(sample.attempt_id, force=True) == {"camera": RecordingStatus.partial}
    again = recording_of(sample.attempt_id)
    assert again.mp4_path == first.mp4_path and again.gaps == first.gaps
    folder = storage.absolute(again.mp4_path).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [Path(again.mp4_path).name, Path(again.poster_path).name, Path(again.sprite_path).name,
         Path(manifest_path(again)).name])


def test_reprocessing_after_the_raw_chunks_were_deleted_is_refused_clearly(clip):
    sample = _stored(clip)
    finalize_now(sample.attempt_id)
    assert recording_of(sample.attempt_id).raw_deleted_at is not None
    with pytest.raises(timeline.FinalizeError, match="raw chunks .* deleted"):
        finalize_now(sample.attempt_id, force=True)
    assert recording_of(sample.attempt_id).status == RecordingStatus.completed
