"""MP4 files read by their boxes: sample tables instead of demuxing (probe_mp4), and the checks an
output passes before its row says it is playable (verify_mp4)."""

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from proctor_app.media.processing.ffmpeg import FfmpegError
from proctor_app.media.processing.timeline import FILL_MIN_S, Probe

DURATION_TOLERANCE_S = 0.5


def _top_level_boxes(path: Path) -> Iterator[tuple[str, int, int]]:
    """(type, payload offset, payload size) of each top-level box of an MP4 file."""
    with open(path, "rb") as f:
        offset = 0
        while len(header := f.read(8)) == 8:
            size, kind = struct.unpack(">I4s", header)
            head = 8
            if size == 1:
                size, head = struct.unpack(">Q", f.read(8))[0], 16
            elif size == 0:  # to the end of the file
                size = os.fstat(f.fileno()).st_size - offset
            yield kind.decode("latin-1"), offset + head, size - head
            offset += size
            f.seek(offset)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        yield kind.decode("latin-1"), start + head, start + size
        start += size


def _box(data: bytes, start: int, end: int, *path: str) -> tuple[int, int] | None:
    for name in path:
        found = next(((s, e) for kind, s, e in _boxes(data, start, end) if kind == name), None)
        if found is None:
            return None
        start, end = found
    return start, end


MP4_CODECS = {"avc1": "h264", "avc3": "h264", "Opus": "opus", "mp4a": "aac"}


def probe_mp4(path: Path) -> Probe:
    """What probe() finds, read from an MP4's sample tables instead of demuxing every packet
    (milliseconds for an hour of video); decode times, which is what holes and seeking need."""
    moov = next(((s, n) for kind, s, n in _top_level_boxes(path) if kind == "moov"), None)
    if moov is None:
        raise FfmpegError(f"{path.name} has no moov box")
    with open(path, "rb") as f:
        f.seek(moov[0])
        data = f.read(moov[1])
    result, track_times = Probe(), {}
    for kind, start, end in _boxes(data, 0, len(data)):
        mdia = _box(data, start, end, "mdia") if kind == "trak" else None
        stbl = mdia and _box(data, *mdia, "minf", "stbl")
        hdlr, mdhd, stsd, stts = (mdia and _box(data, *mdia, "hdlr"), mdia and _box(data, *mdia, "mdhd"),
                                  stbl and _box(data, *stbl, "stsd"), stbl and _box(data, *stbl, "stts"))
        if not (hdlr and mdhd and stsd and stts):
            continue
        handler = data[hdlr[0] + 8:hdlr[0] + 12]
        timescale = struct.unpack_from(">I", data, mdhd[0] + (20 if data[mdhd[0]] == 1 else 12))[0]
        codec = data[stsd[0] + 12:stsd[0] + 16].decode("latin-1")
        count = struct.unpack_from(">I", data, stts[0] + 4)[0]
        runs = struct.unpack_from(f">{2 * count}I", data, stts[0] + 8)
        times, t = [], 0
        for n, delta in zip(runs[::2], runs[1::2]):
            times.extend(range(t, t + n * delta, delta) if delta else [t] * n)
            t += n * delta
        seconds = [x / timescale for x in times]
        result.end_s = max(result.end_s, t / timescale)
        if handler == b"vide":
            result.video_codec = MP4_CODECS.get(codec, codec.lower())
            stss = _box(data, *stbl, "stss")
            if stss is None:  # every sample is a keyframe
                keyframes = seconds
            else:
                n = struct.unpack_from(">I", data, stss[0] + 4)[0]
                keyframes = [seconds[i - 1] for i in struct.unpack_from(f">{n}I", data, stss[0] + 8)]
            marks = keyframes + [t / timescale]
            result.max_keyframe_gap_s = max(b - a for a, b in zip(marks, marks[1:]))
            result.fps = len(seconds) / (t / timescale) if t else 0.0
        elif handler == b"soun":
            result.audio_codec = MP4_CODECS.get(codec, codec.lower())
        track_times[handler] = seconds
    times = track_times.get(b"vide") or track_times.get(b"soun") or []
    result.holes = [(a, b) for a, b in zip(times, times[1:]) if b - a > FILL_MIN_S]
    return result


@dataclass
class Mp4Info:
    duration_s: float
    codec: str


def verify_mp4(path: Path, expected_s: float) -> Mp4Info:
    """moov before mdat, every track decodes to its last frame, duration as planned; raises."""
    boxes = [kind for kind, _, _ in _top_level_boxes(path)]
    if "moov" not in boxes or "mdat" not in boxes or boxes.index("moov") > boxes.index("mdat"):
        raise FfmpegError(f"{path.name}: moov is not before mdat ({boxes})")
    with av.open(str(path)) as container:
        duration = container.duration / 1e6 if container.duration else 0.0
        codecs = [s.codec_context.name for s in container.streams if s.type in ("video", "audio")]
        for stream in container.streams:
            if stream.type not in ("video", "audio"):
                continue
            track_end = float((stream.start_time or 0) + (stream.duration or 0)) * stream.time_base
            # From the keyframe before the last few seconds to the end: the tail must decode.
            container.seek(max(0, int((track_end - 3) / stream.time_base)), stream=stream,
                           backward=True)
            last = None
            for frame in container.decode(stream):
                last = frame
            if last is None or float(last.pts * last.time_base) < track_end - 1.0:
                raise FfmpegError(f"{path.name}: {stream.type} does not decode to its end "
                                  f"({track_end:.2f} s)")
    if abs(duration - expected_s) > DURATION_TOLERANCE_S:
        raise FfmpegError(f"{path.name}: lasts {duration:.2f} s, the timeline {expected_s:.2f} s")
    return Mp4Info(duration, "/".join(codecs))

