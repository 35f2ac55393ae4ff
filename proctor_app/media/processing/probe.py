"""Probing a segment: its chunk files demuxed as one stream (no decoding) for streams, media time
span, holes and keyframe spacing; and each chunk checked against its SHA-256."""

import io
import logging
from pathlib import Path

import av

from proctor_app.media.processing.formats import demuxer_for
from proctor_app.media.processing.timeline import FILL_MIN_S, FinalizeError, Probe
from proctor_app.media.storage.local import file_sha256

log = logging.getLogger("proctor_app.finalize")


class ChunkStream(io.RawIOBase):
    """The files of a segment read as one non-seekable byte stream (for PyAV)."""

    def __init__(self, files: list[Path]):
        self._files = iter(files)
        self._current = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._current is None:
                path = next(self._files, None)
                if path is None:
                    return 0
                self._current = open(path, "rb")
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()



def chunks_matching(files: list[Path], digests: list[str]) -> list[bool]:
    """Whether each file is there and matches its SHA-256."""
    return [_sha256_or_none(path) == digest for path, digest in zip(files, digests)]


def _sha256_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def probe(files: list[Path], mime: str) -> Probe:
    """Demux a segment's bytes with the demuxer of its declared type (never a guess: see
    formats.py); raises av.FFmpegError when not even the header can be read, FinalizeError when
    the type names no container we read."""
    result = Probe()
    video_times, audio_times, keyframes = [], [], []
    end = 0.0
    with av.open(ChunkStream(files), mode="r", format=demuxer_for(mime),
                 options={"protocol_whitelist": "file"}) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is not None:
            result.video_codec = video.codec_context.name
            result.width, result.height = video.codec_context.width, video.codec_context.height
        if audio is not None:
            result.audio_codec = audio.codec_context.name
            result.channels = audio.codec_context.channels
        try:
            for packet in container.demux():
                if packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                end = max(end, t + float((packet.duration or 0) * packet.time_base))
                if packet.stream is video:
                    video_times.append(t)
                    if packet.is_keyframe:
                        keyframes.append(t)
                elif packet.stream is audio:
                    audio_times.append(t)
        except av.FFmpegError as exc:  # damaged beyond resync: what came before still counts
            log.warning("demuxing stopped early: %s", exc)
    times = sorted(video_times) or sorted(audio_times)
    if not times:
        raise FinalizeError("no audio or video packets in the segment")
    result.start_s = min(t[0] for t in (sorted(video_times), sorted(audio_times)) if t)
    result.end_s = end
    result.holes = [(a, b) for a, b in zip(times, times[1:]) if b - a > FILL_MIN_S]
    if len(video_times) > 1:
        span = video_times[-1] - video_times[0]
        result.fps = (len(video_times) - 1) / span if span > 0 else 0.0
    marks = sorted(keyframes) + [result.end_s]
    result.max_keyframe_gap_s = max((b - a for a, b in zip(marks, marks[1:])), default=result.end_s)
    return result

