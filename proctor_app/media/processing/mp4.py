"""MP4 files read by their boxes: sample tables (or a fragmented file's fragment headers) instead of
demuxing (probe_mp4), and the checks an output passes before its row says it is playable
(verify_mp4)."""

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
    (milliseconds for an hour of video); decode times, which is what holes and seeking need.
    A fragmented MP4 (growing.py's) is read from its fragments' headers instead."""
    boxes = list(_top_level_boxes(path))
    moov = next(((s, n) for kind, s, n in boxes if kind == "moov"), None)
    if moov is None:
        raise FfmpegError(f"{path.name} has no moov box")
    with open(path, "rb") as f:
        f.seek(moov[0])
        data = f.read(moov[1])
        if _box(data, 0, len(data), "mvex") is not None:
            tracks = fragmented_tracks(data)
            samples = {track_id: [] for track_id in tracks}
            for kind, start, size in boxes:
                if kind == "moof":
                    f.seek(start - 8)
                    for track_id, found in fragment_samples(f.read(size + 8), tracks).items():
                        samples[track_id] += found
            return probe_fragments(tracks, samples)
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


@dataclass(frozen=True)
class Track:
    """A track of a fragmented MP4, from its moov: what its fragments' headers leave out."""

    handler: str  # "vide", "soun"
    codec: str
    timescale: int
    default_duration: int
    default_flags: int


@dataclass(frozen=True)
class Sample:
    decode: int  # decode time, in the track's timescale
    duration: int
    sync: bool


NON_SYNC = 0x10000  # sample_is_non_sync_sample in a sample's flags


def fragmented_tracks(moov: bytes) -> dict[int, Track]:
    """Track id -> Track, from the payload of a fragmented MP4's moov box (its trak and trex)."""
    defaults = {}
    mvex = _box(moov, 0, len(moov), "mvex")
    for kind, start, end in _boxes(moov, *mvex):
        if kind == "trex":
            track_id, _, duration, _, flags = struct.unpack_from(">5I", moov, start + 4)
            defaults[track_id] = (duration, flags)
    tracks = {}
    for kind, start, end in _boxes(moov, 0, len(moov)):
        if kind != "trak":
            continue
        tkhd, mdia = _box(moov, start, end, "tkhd"), _box(moov, start, end, "mdia")
        if not (tkhd and mdia):
            continue
        track_id = struct.unpack_from(">I", moov, tkhd[0] + (20 if moov[tkhd[0]] == 1 else 12))[0]
        hdlr, mdhd = _box(moov, *mdia, "hdlr"), _box(moov, *mdia, "mdhd")
        stsd = _box(moov, *mdia, "minf", "stbl", "stsd")
        codec = moov[stsd[0] + 12:stsd[0] + 16].decode("latin-1")
        timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if moov[mdhd[0]] == 1 else 12))[0]
        duration, flags = defaults.get(track_id, (0, 0))
        tracks[track_id] = Track(moov[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1"),
                                 MP4_CODECS.get(codec, codec.lower()), timescale, duration, flags)
    return tracks


def fragment_samples(data: bytes, tracks: dict[int, Track]) -> dict[int, list[Sample]]:
    """The samples each track has in the moof boxes of `data` (top-level boxes of an MP4)."""
    samples = {}
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != "moof":
            continue
        for traf_kind, traf_start, traf_end in _boxes(data, start, end):
            if traf_kind != "traf":
                continue
            tfhd, tfdt = _box(data, traf_start, traf_end, "tfhd"), _box(data, traf_start, traf_end, "tfdt")
            flags, track_id = struct.unpack_from(">II", data, tfhd[0])
            flags &= 0xFFFFFF
            track = tracks[track_id]
            duration, sample_flags, at = track.default_duration, track.default_flags, tfhd[0] + 8
            at += 8 if flags & 0x1 else 0
            at += 4 if flags & 0x2 else 0
            if flags & 0x8:
                duration = struct.unpack_from(">I", data, at)[0]
                at += 4
            at += 4 if flags & 0x10 else 0
            if flags & 0x20:
                sample_flags = struct.unpack_from(">I", data, at)[0]
            # Signed: a muxer writes a first audio frame before 0 (Opus pre-skip) as a wrapped one.
            decode = (struct.unpack_from(">q", data, tfdt[0] + 4)[0] if data[tfdt[0]] == 1
                      else struct.unpack_from(">I", data, tfdt[0] + 4)[0])
            found = samples.setdefault(track_id, [])
            for run_kind, run_start, _ in _boxes(data, traf_start, traf_end):
                if run_kind != "trun":
                    continue
                run_flags, count = struct.unpack_from(">II", data, run_start)
                at = run_start + 8 + (4 if run_flags & 0x1 else 0)
                first_flags = None
                if run_flags & 0x4:
                    first_flags = struct.unpack_from(">I", data, at)[0]
                    at += 4
                for index in range(count):
                    length, this_flags = duration, sample_flags
                    if run_flags & 0x100:
                        length = struct.unpack_from(">I", data, at)[0]
                        at += 4
                    at += 4 if run_flags & 0x200 else 0
                    if run_flags & 0x400:
                        this_flags = struct.unpack_from(">I", data, at)[0]
                        at += 4
                    at += 4 if run_flags & 0x800 else 0
                    if index == 0 and first_flags is not None:
                        this_flags = first_flags
                    found.append(Sample(decode, length, not this_flags & NON_SYNC))
                    decode += length
    return samples


def split_fragments(data: bytes) -> tuple[bytes, bytes]:
    """(ftyp and moov, the moof and mdat boxes) of a fragmented MP4 muxer's output; anything
    else (an mfra index at the end) is left out."""
    init, fragments, at = b"", [], 0
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind in ("moof", "mdat"):
            fragments.append(data[at:end])
        elif not fragments:
            init = data[:end]
        at = end
    return init, b"".join(fragments)


def renumber_fragments(data: bytes, after: int) -> int:
    """Number the moof boxes of `data` (a bytearray of moof and mdat boxes) on from `after`, in
    place, as one file's fragments must be; returns the last number."""
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind == "moof":
            after += 1
            mfhd = _box(data, start, end, "mfhd")
            struct.pack_into(">I", data, mfhd[0] + 4, after)
    return after


def probe_fragments(tracks: dict[int, Track], samples: dict[int, list[Sample]]) -> Probe:
    """probe_mp4's result from a fragmented MP4's samples."""
    result, track_times = Probe(), {}
    for track_id, track in tracks.items():
        found = samples.get(track_id) or []
        if not found:
            continue
        seconds = [s.decode / track.timescale for s in found]
        end = (found[-1].decode + found[-1].duration) / track.timescale
        result.end_s = max(result.end_s, end)
        if track.handler == "vide":
            result.video_codec = track.codec
            marks = [t for t, s in zip(seconds, found) if s.sync] + [end]
            result.max_keyframe_gap_s = max((b - a for a, b in zip(marks, marks[1:])), default=end)
            result.fps = len(seconds) / (end - seconds[0]) if end > seconds[0] else 0.0
        elif track.handler == "soun":
            result.audio_codec = track.codec
        track_times[track.handler] = seconds
    times = track_times.get("vide") or track_times.get("soun") or []
    result.start_s = min((t[0] for t in track_times.values()), default=0.0)
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

