"""Finalize run from the test process, and checks of what it made: the MP4's boxes, every frame
decoded, brightness and loudness at given times, the Recording row agreeing with the file."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.processing import finalize, mp4
from proctor_app.media.storage import storage
from proctor_app.media.storage.local import file_sha256
from proctor_app.models import Chunk, Recording, Segment
from proctor_app.services.settings import settings_cache

# The length of the `clip` fixture's recording (tests/conftest.py).
CLIP_S = 18


def finalize_now(attempt_id: int, force: bool = False) -> dict[str, str]:
    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, finalize.finalize_attempt(
            attempt_id, keep_raw=settings_cache()["keep_raw_chunks"], force=force)).result()


def recording_of(attempt_id: int, stream: str = "camera") -> Recording:
    with session_scope() as db:
        return db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                               Recording.stream == stream)).one()


def chunk_files(recording_id: int) -> list[Path]:
    with session_scope() as db:
        paths = db.exec(select(Chunk.path).join(Segment, Segment.id == Chunk.segment_id)
                        .where(Segment.recording_id == recording_id)).all()
    return [storage.absolute(p) for p in paths]


def top_boxes(path: Path) -> list[str]:
    return [kind for kind, _, _ in mp4._top_level_boxes(path)]


def decode_everything(path: Path) -> dict:
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


def luma_at(path: Path, t: float) -> float:
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


def loudness(path: Path, start: float, end: float) -> float:
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


def assert_verified_mp4(rec: Recording, expected_s: float) -> dict:
    path = storage.absolute(rec.mp4_path)
    boxes = top_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert rec.size_bytes == path.stat().st_size
    assert rec.sha256 == file_sha256(path)
    info = decode_everything(path)
    assert abs(info["duration"] - expected_s) <= 0.5, (info["duration"], expected_s)
    assert abs(rec.duration_s - info["duration"]) < 0.01
    # Decoded to the end: the last frame is within a frame or two of the end.
    assert info["video_end"] >= info["duration"] - 0.5, info
    assert info["video_codec"] == "h264"
    return info
