"""Uploaded bytes are read with the demuxer their declared type names, and ffmpeg opens nothing
but our own listings and the chunk files: a chunk that is really an ffconcat listing or an HLS
playlist (declared as video) cannot make processing or the preview read another file.

The canary is a video file where each reader would resolve the hostile listing's relative path:
PyAV (probing) opens it relative to the process's folder, ffmpeg's concatf relative to the work
folder (as a concatf: listing, which may name any file). Each test first shows that an unpinned reader does read the canary (so the test bites),
then that the real code refuses the segment and nothing it wrote holds the canary's bytes."""

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import pytest

from proctor_app.media.processing import timeline
from proctor_app.media.processing.ffmpeg import FfmpegError, run_ffmpeg
from proctor_app.media.processing.graphs import copy_graph, timeline_graph
from proctor_app.media.processing.preview import ensure_preview
from proctor_app.media.processing.probe import ChunkStream, probe
from proctor_app.media.processing.timeline import Gap, Probe, Source
from proctor_app.media.storage import storage
from proctor_app.models import RecordingStatus, utcnow
from tests.support import samples
from tests.support.clock import FakeClock
from tests.support.finalized import CLIP_S, assert_verified_mp4, finalize_now, recording_of

CANARY = "canary.mkv"
FFCONCAT = f"ffconcat version 1.0\nfile {CANARY}\n".encode()
HLS = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{CANARY}\n#EXT-X-ENDLIST\n".encode()
HOSTILE = {"ffconcat": FFCONCAT, "hls": HLS}


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> bytes:
    """A video of its own (not the clip the good segments are made of)."""
    return samples.encode(tmp_path_factory.mktemp("canary") / CANARY, 4, "h264", size=(160, 120),
                          fps=10).read_bytes()


@pytest.fixture
def canary_here(tmp_path, monkeypatch, canary) -> bytes:
    """The canary video as canary.mkv in the process's current folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / CANARY).write_bytes(canary)
    return canary


def _nothing_holds(canary: bytes, folder: Path) -> None:
    marker = canary[len(canary) // 2:len(canary) // 2 + 64]
    for path in folder.rglob("*"):
        if path.is_file() and path.name not in (CANARY, "outside.mkv"):
            assert marker not in path.read_bytes(), path


@pytest.mark.parametrize("kind", HOSTILE)
def test_probe_reads_only_the_declared_container(kind, canary_here, tmp_path):
    chunk = tmp_path / "chunk-0"
    chunk.write_bytes(HOSTILE[kind])
    if kind == "ffconcat":  # unpinned, PyAV follows the listing to the canary
        with av.open(ChunkStream([chunk]), mode="r") as container:
            assert container.format.name == "concat" and container.streams.video
    for mime in (samples.MIME["vp8"], samples.MIME["h264"], "video/mp4"):
        with pytest.raises(av.FFmpegError):
            probe([chunk], mime)


@pytest.mark.parametrize("kind", HOSTILE)
def test_ffmpeg_graphs_do_not_follow_a_listing_uploaded_as_a_chunk(kind, canary, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    # concatf resolves the listing's relative path in the work folder, as a concatf: listing
    # itself: one naming a file outside storage.
    (tmp_path / "outside.mkv").write_bytes(canary)
    (work / CANARY).write_text(f"{tmp_path / 'outside.mkv'}\n")
    chunk = tmp_path / "chunk-0"
    chunk.write_bytes(HOSTILE[kind])
    src = Source(0, 0.0, CLIP_S, samples.MIME["h264"], [chunk], ["-"], missing=False,
                 probe=Probe(video_codec="h264", width=320, height=240, fps=15, end_s=CLIP_S))
    if kind == "ffconcat":  # unpinned, ffmpeg copies the canary
        import ffmpeg
        (work / "segment-0.txt").write_text(f"{chunk}\n")
        unpinned = ffmpeg.input(f"concatf:{work / 'segment-0.txt'}").output(
            str(tmp_path / "unpinned.mp4"), c="copy", f="mp4")
        asyncio.run(run_ffmpeg(unpinned, CLIP_S))
        assert (tmp_path / "unpinned.mp4").stat().st_size > 5_000
        (tmp_path / "unpinned.mp4").unlink()
    for mime in (samples.MIME["h264"], samples.MIME["vp8"]):
        src.mime = mime
        with pytest.raises(FfmpegError):
            asyncio.run(run_ffmpeg(copy_graph(src, work, tmp_path / "copy.mp4"), CLIP_S))
        with pytest.raises(FfmpegError):
            asyncio.run(run_ffmpeg(timeline_graph([src], [Gap(0.0, 1.0, timeline.CAUSE_MISSING)], CLIP_S,
                                                  work, tmp_path / "timeline.mp4"), CLIP_S))
    _nothing_holds(canary, tmp_path)


def _attempt_with(clip: bytes, hostile: bytes, good_first: bool) -> samples.SampleAttempt:
    """Two segments: the clip (H.264 in Matroska) and a hostile chunk declared as video."""
    started = utcnow() - timedelta(seconds=2 * CLIP_S + 20)
    sample = samples.start_attempt(started)
    good = samples.evenly(samples.cut(clip, CLIP_S), started, CLIP_S)
    bad = samples.evenly([hostile], started + timedelta(seconds=CLIP_S + 1), 3)
    first, second = (good, bad) if good_first else (bad, good)
    # (First, the hostile chunk is declared as the recording's type: the preview's container
    # follows the recording's type.)
    first_mime, second_mime = ((samples.MIME["h264"], samples.MIME["vp8"]) if good_first
                               else (samples.MIME["h264"], samples.MIME["h264"]))
    samples.upload_segment(sample, "camera", 0, first, first_mime)
    if not good_first:  # the good segment after the hostile one
        second = samples.evenly(samples.cut(clip, CLIP_S), started + timedelta(seconds=5), CLIP_S)
    samples.upload_segment(sample, "camera", 1, second, second_mime)
    return sample


@pytest.mark.parametrize("kind", HOSTILE)
def test_finalize_marks_a_hostile_segment_undecodable(kind, clip, canary_here, demo_db):
    sample = _attempt_with(clip, HOSTILE[kind], good_first=True)
    started = utcnow() - timedelta(seconds=2 * CLIP_S + 20)
    samples.end_attempt(sample, started + timedelta(seconds=CLIP_S + 4))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.partial}
    rec = recording_of(sample.attempt_id)
    assert timeline.CAUSE_UNDECODABLE in [g["cause"] for g in rec.gaps]
    assert_verified_mp4(rec, rec.duration_s)
    _nothing_holds(canary_here, storage.absolute(rec.mp4_path).parent)


def test_finalize_of_only_a_hostile_segment_fails_cleanly(canary_here, demo_db):
    started = utcnow() - timedelta(seconds=30)
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, samples.evenly([FFCONCAT], started, 3), samples.MIME["vp8"])
    samples.end_attempt(sample, started + timedelta(seconds=10))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.failed}
    rec = recording_of(sample.attempt_id)
    assert rec.mp4_path == "" and rec.failure_reason == timeline.CAUSE_UNDECODABLE
    assert [g["cause"] for g in rec.gaps] == [timeline.CAUSE_UNDECODABLE]


def test_finalize_of_an_unknown_declared_type_fails_cleanly(clip, demo_db):
    started = utcnow() - timedelta(seconds=30)
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, samples.evenly([clip], started, 3), "video/x-flv")
    samples.end_attempt(sample, started + timedelta(seconds=10))
    assert finalize_now(sample.attempt_id) == {"camera": RecordingStatus.failed}
    assert recording_of(sample.attempt_id).failure_reason == timeline.CAUSE_UNDECODABLE


async def test_preview_leaves_out_a_hostile_segment(clip, canary_here, demo_db):
    sample = _attempt_with(clip, FFCONCAT, good_first=False)
    preview = await ensure_preview(sample.attempt_id, "camera", FakeClock(datetime.now(timezone.utc)))
    path = storage.absolute(preview.path)
    with av.open(str(path)) as container:
        assert abs(container.duration / 1e6 - CLIP_S) < 1.5  # the good segment alone
    _nothing_holds(canary_here, path.parent)
