"""Raw chunks of an attempt -> one seekable MP4 per stream, on the exam's wall-clock timeline.

Per stream (Recording), per segment (one MediaRecorder instance): the stored chunks are checked
against their SHA-256 and read in seq order as one byte stream; missing or damaged chunks are
left out (the Matroska demuxer resyncs at the next cluster) and become gaps.

Two ways to the MP4, both with ffmpeg as an async subprocess, the command built by ffmpeg-python:
- copy: one clean H.264 segment that covers the exam within FILL_MIN_S at both ends and has a
  keyframe at least every MAX_KEYFRAME_GAP_S: video and audio are copied, nothing is decoded.
  The audio stays Opus (MP4 'Opus' entry; plays in Chrome, Edge, Firefox and Safari 17+):
  encoding an hour of AAC alone takes ~10 s here, which would end "watch within seconds".
- timeline: everything else. Each segment is placed at its wall-clock start on a black canvas
  as long as the exam (overlay by timestamps), holes inside segments are blacked out, audio is
  padded with silence; encoded with libx264 (keyframe every GOP_S) and AAC.

The MP4 is verified (moov before mdat, decodes to its last frame, duration as planned) before
its row says so; the raw chunks are deleted only after that (unless keep_raw_chunks). Poster and
thumbnail sprite come after the video is playable. Every output is written under a temporary
name and renamed, so a rerun after a crash leaves exactly one of each.

MP4 time t is the wall-clock instant Recording.started_at + t: the exam's start for timeline
outputs, the segment's start (within FILL_MIN_S of it) for copies.
"""

import asyncio
import ctypes
import hashlib
import io
import logging
import math
import os
import shutil
import signal
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import av
import ffmpeg
import imageio_ffmpeg
from sqlmodel import Session, select

from proctor_app.db import session_scope
from proctor_app.media.jobs import PermanentError
from proctor_app.media.storage import absolute, processed_dir
from proctor_app.models import Attempt, Chunk, Recording, RecordingStatus, Segment, utcnow
from proctor_app.services.settings import get_setting

log = logging.getLogger("proctor_app.finalize")

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# Holes up to this long are not filled (nor counted as gaps); the "longer than a second".
FILL_MIN_S = 1.0
# A copied video must stay seekable: a browser decodes from the keyframe before a seek target.
MAX_KEYFRAME_GAP_S = 10.0
GOP_S = 2
DURATION_TOLERANCE_S = 0.5
X264_PRESET = "veryfast"
# The cheapest motion search on top: measured on the benchmark's webcam-like clip, 30% less CPU
# than plain veryfast for 6% more bytes (superfast: 25% less CPU, 85% more bytes).
X264_PARAMS = "me=dia:subme=1"
X264_CRF = 26
AAC_BITRATE = "64k"
COPY_AUDIO = {"opus", "aac"}
# The review page's sprite: one row of thumbnails, SPRITE_WIDTH px wide, one every N seconds;
# a JPEG is at most 65535 px wide, so long videos get a longer interval.
SPRITE_WIDTH = 160
SPRITE_MIN_INTERVAL_S = 5
SPRITE_MAX_TILES = 400
POSTER_AT_S = 1.0
# JPEG is full-range YUV; ffmpeg's JPEG encoder refuses a browser's limited-range frames as they are.
JPEG_PIX_FMT = "yuvj420p"
# ffmpeg runs below the web server's priority: submits and page loads come first.
FFMPEG_NICE = 10
PR_SET_PDEATHSIG = 1

CAUSE_NOT_UPLOADED = "nothing uploaded for this time (offline, reload or recorder stopped)"
CAUSE_MISSING = "chunks missing"
CAUSE_DAMAGED = "chunks damaged on disk"
CAUSE_UNDECODABLE = "undecodable data"
CAUSE_NO_HEADER = "segment start missing: the rest of the segment cannot be decoded"
CAUSE_NO_MEDIA = "no media received"

ProgressFn = Callable[[float], None]


class FinalizeError(PermanentError):
    """Processing that cannot succeed by trying again (the message says why)."""


class FfmpegError(RuntimeError):
    pass


@dataclass
class Gap:
    start_s: float
    end_s: float
    cause: str

    def as_json(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "cause": self.cause}


@dataclass
class Probe:
    """What demuxing a segment (no decoding) tells: streams, media time span, holes, keyframes."""

    video_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_codec: str = ""
    channels: int = 0
    start_s: float = 0.0
    end_s: float = 0.0
    holes: list[tuple[float, float]] = field(default_factory=list)
    max_keyframe_gap_s: float = 0.0


@dataclass
class Source:
    """One segment's bytes and where they sit on the exam's timeline."""

    number: int
    offset_s: float  # exam time of the segment's media time 0
    wall_end_s: float  # exam time of its last chunk's end, as the browser reported it
    mime: str
    files: list[Path]  # in seq order; check_chunks drops those not matching their SHA-256
    sha256: list[str]
    missing: bool  # seqs absent below the highest one stored
    damaged: bool = False
    probe: Probe | None = None

    @property
    def start_s(self) -> float:
        return self.offset_s + self.probe.start_s

    @property
    def end_s(self) -> float:
        return self.offset_s + self.probe.end_s

    @property
    def hole_cause(self) -> str:
        """Why a hole inside this segment is there."""
        if self.damaged:
            return CAUSE_DAMAGED
        return CAUSE_MISSING if self.missing else CAUSE_UNDECODABLE


@dataclass
class Outcome:
    status: str
    mp4_path: str = ""
    duration_s: float | None = None
    codec: str = ""
    size_bytes: int | None = None
    sha256: str = ""
    gaps: list[Gap] = field(default_factory=list)
    started_at: datetime | None = None
    failure_reason: str = ""


# ---------------------------------------------------------------------------------------------
# Reading the chunks


class _ChunkStream(io.RawIOBase):
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


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _matching(files: list[Path], digests: list[str]) -> list[bool]:
    return [_file_sha256(path) == digest for path, digest in zip(files, digests)]


def probe(files: list[Path]) -> Probe:
    """Demux a segment's bytes; raises av.FFmpegError when not even the header can be read."""
    result = Probe()
    video_times, audio_times, keyframes = [], [], []
    end = 0.0
    with av.open(_ChunkStream(files), mode="r") as container:
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


# ---------------------------------------------------------------------------------------------
# Planning


def _seconds(moment: datetime, origin: datetime) -> float:
    return (moment - origin).total_seconds()


def plan_gaps(sources: list[Source], total_s: float) -> list[Gap]:
    """Every stretch of the exam longer than FILL_MIN_S that no usable media covers, with cause."""
    gaps, covered_to = [], 0.0
    for src in sorted(sources, key=lambda s: s.start_s):
        if src.start_s - covered_to > FILL_MIN_S:
            gaps.append(Gap(covered_to, min(src.start_s, total_s), CAUSE_NOT_UPLOADED))
        for a, b in src.probe.holes:
            gaps.append(Gap(max(0.0, src.offset_s + a), min(total_s, src.offset_s + b), src.hole_cause))
        covered_to = max(covered_to, src.end_s)
    if total_s - covered_to > FILL_MIN_S:
        gaps.append(Gap(covered_to, total_s, CAUSE_NOT_UPLOADED))
    return [g for g in gaps if g.end_s > g.start_s]


def may_copy(sources: list[Source], total_s: float) -> bool:
    """What the rows tell before any byte is read: worth starting a copy while checking."""
    if len(sources) != 1:
        return False
    src = sources[0]
    return (not src.missing and ("avc1" in src.mime or "h264" in src.mime)
            and abs(src.offset_s) <= FILL_MIN_S and abs(total_s - src.wall_end_s) <= 2 * FILL_MIN_S)


def copyable(sources: list[Source], total_s: float) -> bool:
    """One clean, seekable H.264 segment that already spans the exam: no re-encoding needed."""
    if len(sources) != 1:
        return False
    src = sources[0]
    p = src.probe
    return (p.video_codec == "h264" and not src.missing and not src.damaged and not p.holes
            and (not p.audio_codec or p.audio_codec in COPY_AUDIO)
            and p.max_keyframe_gap_s <= MAX_KEYFRAME_GAP_S
            and abs(src.start_s) <= FILL_MIN_S and abs(total_s - src.end_s) <= FILL_MIN_S)


# ---------------------------------------------------------------------------------------------
# ffmpeg


def _child_setup() -> None:
    """In the ffmpeg child: lower priority, and die with the worker (Linux), so a crashed
    worker leaves no ffmpeg writing into the folder the next try works in."""
    os.nice(FFMPEG_NICE)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


async def run_ffmpeg(stream_spec, duration_s: float, on_progress: ProgressFn | None = None) -> None:
    """Run an ffmpeg-python graph; progress (0..1) from `-progress`, stderr tail on failure."""
    args = ffmpeg.compile(stream_spec.global_args("-nostdin", "-hide_banner", "-loglevel", "error",
                                                  "-progress", "pipe:1", "-nostats")
                          .overwrite_output(), cmd=FFMPEG)
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE,
                                                preexec_fn=_child_setup)
    stderr = asyncio.create_task(proc.stderr.read())
    try:
        async for line in proc.stdout:
            key, _, value = line.decode(errors="replace").strip().partition("=")
            # out_time_ms is microseconds too (an old ffmpeg naming slip).
            if key == "out_time_us" and value.isdigit() and on_progress and duration_s > 0:
                on_progress(min(1.0, int(value) / 1e6 / duration_s))
        code = await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        errors = (await stderr).decode(errors="replace")
    if code != 0:
        raise FfmpegError(f"ffmpeg exited with {code}: {errors.strip()[-1500:]}")


def _concat_input(src: Source, work: Path):
    """A segment's usable chunk files as one ffmpeg input (concatf: no joined copy on disk)."""
    listing = work / f"segment-{src.number}.txt"
    listing.write_text("".join(f"{path}\n" for path in src.files))
    return ffmpeg.input(f"concatf:{listing}")


def copy_graph(src: Source, work: Path, out: Path):
    # ffmpeg's default selection: the video and, if there is one, the audio track.
    return _concat_input(src, work).output(str(out), c="copy", movflags="+faststart", f="mp4")


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def timeline_graph(sources: list[Source], gaps: list[Gap], total_s: float, work: Path, out: Path):
    """Segments overlaid on black at their exam times; gaps black and silent; libx264 + AAC."""
    with_video = [s for s in sources if s.probe.video_codec]
    first = with_video[0].probe if with_video else Probe(width=640, height=480, fps=15)
    w, h = _even(first.width), _even(first.height)
    fps = min(60, max(1, round(first.fps or 15)))
    channels = min(2, max((s.probe.channels for s in sources), default=0))
    layout = "stereo" if channels == 2 else "mono"
    video = ffmpeg.input(f"color=c=black:s={w}x{h}:r={fps}:d={total_s:.3f}", f="lavfi")
    video = video.filter("format", "yuv420p")
    audio_parts = []
    ordered = sorted(sources, key=lambda s: s.start_s)
    for i, src in enumerate(ordered):
        # A segment keeps the exam time up to where the next one starts (clocks may overlap).
        lo = max(0.0, src.start_s)
        hi = min(total_s, ordered[i + 1].start_s if i + 1 < len(ordered) else total_s)
        if hi <= lo:
            continue
        inp = _concat_input(src, work)
        if src.probe.video_codec:
            part = (inp["v:0"].filter("setpts", f"PTS+{src.offset_s:.6f}/TB")
                    .filter("trim", start=f"{lo:.6f}", end=f"{hi:.6f}")
                    .filter("scale", w, h, force_original_aspect_ratio="decrease")
                    .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
                    .filter("setsar", 1).filter("format", "yuv420p"))
            video = ffmpeg.filter([video, part], "overlay", eof_action="pass", repeatlast=0)
        if channels and src.probe.audio_codec:
            audio_parts.append(
                inp["a:0"].filter("asetpts", f"PTS+{src.offset_s:.6f}/TB")
                .filter("atrim", start=f"{lo:.6f}", end=f"{hi:.6f}")
                # Pads silence from 0 and over holes, so amix adds every part at its exam time.
                .filter("aresample", 48000, **{"async": 1, "first_pts": 0})
                .filter("aformat", sample_fmts="fltp", channel_layouts=layout))
    for gap in gaps:
        # Over a hole inside a segment the overlay holds the last frame: cover it with black.
        if gap.cause != CAUSE_NOT_UPLOADED:
            black = ffmpeg.input(f"color=c=black:s={w}x{h}:r={fps}:d={gap.end_s - gap.start_s:.3f}",
                                 f="lavfi").filter("setpts", f"PTS+{gap.start_s:.6f}/TB")
            video = ffmpeg.filter([video, black], "overlay", eof_action="pass", repeatlast=0)
    outputs = [video]
    if audio_parts:
        audio = (audio_parts[0] if len(audio_parts) == 1 else
                 ffmpeg.filter(audio_parts, "amix", inputs=len(audio_parts), duration="longest",
                               normalize=0))
        outputs.append(audio.filter("apad", whole_dur=f"{total_s:.6f}")
                       .filter("atrim", end=f"{total_s:.6f}"))
    return ffmpeg.output(*outputs, str(out), f="mp4", t=f"{total_s:.6f}", movflags="+faststart",
                         vcodec="libx264", preset=X264_PRESET, crf=X264_CRF, pix_fmt="yuv420p",
                         **{"x264-params": X264_PARAMS},
                         force_key_frames=f"expr:gte(t,n_forced*{GOP_S})",
                         acodec="aac", audio_bitrate=AAC_BITRATE)


# ---------------------------------------------------------------------------------------------
# Verification


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


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---------------------------------------------------------------------------------------------
# Poster and sprite


def sprite_interval(duration_s: float) -> int:
    return max(SPRITE_MIN_INTERVAL_S, math.ceil(duration_s / SPRITE_MAX_TILES))


def sprite_name(stream: str, interval_s: int) -> str:
    """The name the review page reads the layout from (services/review.py sprite_layout)."""
    return f"{stream}_sprite_{interval_s}s_{SPRITE_WIDTH}w.jpg"


async def make_poster(mp4: Path, out: Path, duration_s: float) -> None:
    tmp = out.with_name(f".{out.name}.tmp.jpg")
    at = min(POSTER_AT_S, duration_s / 2)
    await run_ffmpeg(ffmpeg.input(str(mp4), ss=f"{at:.3f}")
                     .filter("scale", "iw", "ih", out_range="full").filter("format", JPEG_PIX_FMT)
                     .output(str(tmp), vframes=1, **{"q:v": 4}), 0)
    os.replace(tmp, out)


async def make_sprite(mp4: Path, out: Path, duration_s: float, interval_s: int) -> None:
    """One row of keyframe thumbnails (outputs have a keyframe every few seconds)."""
    tiles = max(1, math.ceil(duration_s / interval_s))
    tmp = out.with_name(f".{out.name}.tmp.jpg")
    graph = (ffmpeg.input(str(mp4), skip_frame="nokey")
             # fps emits nothing for a lone keyframe at EOF: pad with clones of the last one.
             .filter("tpad", stop_mode="clone", stop_duration=f"{duration_s:.3f}")
             .filter("fps", f"1/{interval_s}")
             .filter("scale", SPRITE_WIDTH, -2, out_range="full").filter("format", JPEG_PIX_FMT)
             .filter("tile", f"{tiles}x1")
             .output(str(tmp), vframes=1, an=None, **{"q:v": 5}))
    await run_ffmpeg(graph, 0)
    os.replace(tmp, out)


# ---------------------------------------------------------------------------------------------
# One recording


@dataclass
class Plan:
    """What converting one recording needs, read from the database up front."""

    recording_id: int
    stream: str
    attempt_started: datetime
    attempt_ended: datetime
    out_dir: str  # relative to storage
    sources: list[Source]
    lost: list[Gap]  # segments nothing can be read from
    chunk_paths: list[str]

    @property
    def total_s(self) -> float:
        return _seconds(self.attempt_ended, self.attempt_started)


def load_plan(db: Session, recording: Recording, attempt: Attempt) -> Plan:
    """The recording's segments and chunks as the rows describe them (no file is read)."""
    segments = db.exec(select(Segment).where(Segment.recording_id == recording.id)
                       .order_by(Segment.number)).all()
    sources, lost, chunk_paths = [], [], []
    for segment in segments:
        chunks = db.exec(select(Chunk).where(Chunk.segment_id == segment.id).order_by(Chunk.seq)).all()
        chunk_paths += [c.path for c in chunks]
        if not chunks or segment.started_at is None:
            continue
        offset = _seconds(segment.started_at, attempt.started_at)
        wall_end = _seconds(segment.ended_at or chunks[-1].end_time or segment.started_at,
                            attempt.started_at)
        if chunks[0].seq != 0:
            lost.append(Gap(max(0.0, offset), wall_end, CAUSE_NO_HEADER))
            continue
        sources.append(Source(segment.number, offset, wall_end, segment.mime_type or recording.mime_type,
                              [absolute(c.path) for c in chunks], [c.sha256 for c in chunks],
                              missing=chunks[-1].seq + 1 != len(chunks)))
    return Plan(recording.id, recording.stream, attempt.started_at, attempt.ended_at,
                processed_dir(attempt.id, attempt.started_at), sources, lost, chunk_paths)


def check_chunks(plan: Plan) -> None:
    """Every chunk file against its SHA-256: damaged ones are left out (a segment whose first
    chunk is damaged leaves the plan as lost time)."""
    for src in list(plan.sources):
        good = _matching(src.files, src.sha256)
        src.damaged = not all(good)
        src.files = [path for path, ok in zip(src.files, good) if ok]
        if not good[0]:
            plan.sources.remove(src)
            plan.lost.append(Gap(max(0.0, src.offset_s), src.wall_end_s, CAUSE_NO_HEADER))


def probe_sources(plan: Plan) -> None:
    """Probe every segment; those that cannot be read leave the plan as lost time."""
    for src in list(plan.sources):
        try:
            src.probe = probe(src.files)
        except (av.FFmpegError, FinalizeError) as exc:
            log.warning("recording %s segment %s unreadable: %s", plan.recording_id, src.number, exc)
            plan.sources.remove(src)
            plan.lost.append(Gap(max(0.0, src.offset_s), src.wall_end_s, CAUSE_UNDECODABLE))


def _blame_lost(gaps: list[Gap], lost: list[Gap]) -> list[Gap]:
    """Time where a segment was recorded but cannot be read is that segment's fault."""
    for gap in gaps:
        for dead in lost:
            if gap.cause == CAUSE_NOT_UPLOADED and dead.start_s < gap.end_s and dead.end_s > gap.start_s:
                gap.cause = dead.cause
    return gaps


async def _cancel(task: asyncio.Task | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _copied(plan: Plan, copy: asyncio.Task, tmp: Path) -> bool:
    """Whether the copy started on the rows' word is the result: its own sample tables show
    one clean, seekable H.264 segment spanning the exam."""
    if plan.sources[0].damaged:
        return False
    try:
        await copy
    except FfmpegError as exc:
        log.warning("recording %s: copy failed, re-encoding: %s", plan.recording_id, exc)
        return False
    plan.sources[0].probe = await asyncio.to_thread(probe_mp4, tmp)
    return copyable(plan.sources, plan.total_s)


async def convert(plan: Plan, on_progress: ProgressFn | None = None) -> Outcome:
    """Build and verify the MP4 of one recording (the database is not touched).

    When the rows promise a plain copy, ffmpeg copies at once while the chunks' SHA-256 are
    checked; the copy's sample tables then confirm it (no holes, keyframes often enough, the
    right length), so an hour is not demuxed twice. Anything else is probed packet by packet
    and placed on the exam's timeline.
    """
    total_s = plan.total_s
    if total_s <= 0:
        raise FinalizeError("the attempt has no length (it ended before it started)")
    work = absolute(plan.out_dir) / f".work-{plan.stream}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tmp = work / "out.mp4"
    copy = None
    try:
        if may_copy(plan.sources, total_s):
            src = plan.sources[0]
            copy = asyncio.create_task(
                run_ffmpeg(copy_graph(src, work, tmp), src.wall_end_s - src.offset_s, on_progress))
        await asyncio.to_thread(check_chunks, plan)
        if copy and plan.sources and await _copied(plan, copy, tmp):
            gaps, expected = [], plan.sources[0].probe.end_s
            started_at = plan.attempt_started + timedelta(seconds=plan.sources[0].offset_s)
        else:
            await _cancel(copy)
            await asyncio.to_thread(probe_sources, plan)
            if not plan.sources:
                cause = plan.lost[0].cause if plan.lost else CAUSE_NO_MEDIA
                return Outcome(RecordingStatus.failed, gaps=[Gap(0.0, total_s, cause)], failure_reason=cause)
            gaps = _blame_lost(plan_gaps(plan.sources, total_s), plan.lost)
            if copyable(plan.sources, total_s):
                src = plan.sources[0]
                expected = src.probe.end_s - src.probe.start_s
                started_at = plan.attempt_started + timedelta(seconds=src.offset_s)
                await run_ffmpeg(copy_graph(src, work, tmp), expected, on_progress)
            else:
                expected, started_at = total_s, plan.attempt_started
                await run_ffmpeg(timeline_graph(plan.sources, gaps, total_s, work, tmp), total_s, on_progress)
        info, digest = await asyncio.gather(asyncio.to_thread(verify_mp4, tmp, expected),
                                            asyncio.to_thread(sha256_of, tmp))
        relative = f"{plan.out_dir}/{plan.stream}.mp4"
        size = tmp.stat().st_size
        os.replace(tmp, absolute(relative))
    finally:
        await _cancel(copy)
        shutil.rmtree(work, ignore_errors=True)
    return Outcome(RecordingStatus.partial if gaps else RecordingStatus.completed, relative,
                   info.duration_s, info.codec, size, digest, gaps, started_at)


async def make_thumbnails(db_scope, recording_id: int) -> None:
    """Poster and sprite of a playable recording; its row gets their paths."""
    with db_scope() as db:
        rec = db.get(Recording, recording_id)
        if rec is None or not rec.mp4_path or not rec.duration_s:
            return
        mp4, duration, stream = absolute(rec.mp4_path), rec.duration_s, rec.stream
        folder = rec.mp4_path.rsplit("/", 1)[0]
    interval = sprite_interval(duration)
    poster_rel = f"{folder}/{stream}_poster.jpg"
    sprite_rel = f"{folder}/{sprite_name(stream, interval)}"
    await make_poster(mp4, absolute(poster_rel), duration)
    await make_sprite(mp4, absolute(sprite_rel), duration, interval)
    # A rerun with another duration names its sprite differently: keep only the current one.
    for old in absolute(folder).glob(f"{stream}_sprite_*"):
        if old.name != Path(sprite_rel).name:
            old.unlink(missing_ok=True)
    with db_scope() as db:
        rec = db.get(Recording, recording_id)
        rec.poster_path, rec.sprite_path = poster_rel, sprite_rel
        db.add(rec)


def delete_raw(chunk_paths: list[str]) -> None:
    """Remove chunk files and the folders they leave empty (idempotent)."""
    folders = set()
    for relative in chunk_paths:
        path = absolute(relative)
        path.unlink(missing_ok=True)
        # The segment's, the stream's and the attempt's folders.
        folders.update((path.parent, path.parent.parent, path.parent.parent.parent))
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone
            pass


# ---------------------------------------------------------------------------------------------
# One attempt

FINISHED = (RecordingStatus.completed, RecordingStatus.partial)
PROGRESS_EVERY_S = 2.0


def _start(attempt_id: int, force: bool) -> tuple[list[Plan], list[tuple[Recording, list[str]]], bool]:
    """Mark the recordings to convert "processing" (ingest then refuses more chunks for them),
    then read their plans; also returns the finished ones (with their chunk paths) to tidy, and
    the keep_raw_chunks setting."""
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt is None:
            raise FinalizeError(f"attempt {attempt_id} does not exist")
        if attempt.started_at is None or attempt.ended_at is None:
            raise FinalizeError("the attempt has not ended yet")
        if attempt.media_expired_at is not None:
            return [], [], True  # retention deleted its media
        keep_raw = bool(get_setting(db, "keep_raw_chunks"))
        todo, finished = [], []
        for rec in db.exec(select(Recording).where(Recording.attempt_id == attempt_id)
                           .order_by(Recording.stream)):
            if rec.status == RecordingStatus.expired:
                continue
            if rec.status in FINISHED and not force:
                finished.append(rec)
                continue
            if rec.raw_deleted_at is not None:
                raise FinalizeError(f"the raw chunks of the {rec.stream} recording were deleted after "
                                    "processing, so it cannot be processed again")
            rec.status, rec.progress = RecordingStatus.processing, 0.0
            db.add(rec)
            todo.append(rec.id)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        plans = [load_plan(db, db.get(Recording, rec_id), attempt) for rec_id in todo]
        tidy = [(rec, list(db.exec(select(Chunk.path).join(Segment, Segment.id == Chunk.segment_id)
                                   .where(Segment.recording_id == rec.id))))
                for rec in finished]
    return plans, tidy, keep_raw


def _save(plan: Plan, outcome: Outcome, keep_raw: bool) -> None:
    with session_scope() as db:
        rec = db.get(Recording, plan.recording_id)
        rec.status, rec.gaps, rec.gap_count = outcome.status, [g.as_json() for g in outcome.gaps], len(outcome.gaps)
        if outcome.status != RecordingStatus.failed:
            rec.failure_reason = ""
        elif not (outcome.failure_reason == CAUSE_NO_MEDIA and rec.failure_reason):
            # (The browser's own report of why nothing came, from ingest, says more.)
            rec.failure_reason = outcome.failure_reason
        if outcome.mp4_path:
            rec.mp4_path, rec.duration_s, rec.codec = outcome.mp4_path, outcome.duration_s, outcome.codec[:40]
            rec.size_bytes, rec.sha256, rec.progress = outcome.size_bytes, outcome.sha256, 1.0
            rec.started_at = outcome.started_at
            rec.ended_at = outcome.started_at + timedelta(seconds=outcome.duration_s)
            # Decided with the verified result in one commit; the files follow (idempotently).
            if not keep_raw:
                rec.raw_deleted_at = utcnow()
        db.add(rec)


def fail_processing(attempt_id: int, reason: str) -> None:
    """The job gave up: recordings it left "processing" say so, with the reason."""
    with session_scope() as db:
        for rec in db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                   Recording.status == RecordingStatus.processing)):
            rec.status, rec.failure_reason, rec.progress = RecordingStatus.failed, reason[:500], 0.0
            db.add(rec)


def _save_progress(recording_id: int, value: float) -> None:
    with session_scope() as db:
        rec = db.get(Recording, recording_id)
        if rec is not None and rec.status == RecordingStatus.processing:
            rec.progress = value
            db.add(rec)


async def _thumbnails(recording_id: int) -> None:
    try:
        await make_thumbnails(session_scope, recording_id)
    except Exception:  # the video is what matters; a missing poster does not fail it
        log.exception("poster or sprite of recording %s failed", recording_id)


async def finalize_attempt(attempt_id: int, force: bool = False, last_try: bool = True,
                           on_progress: ProgressFn | None = None,
                           on_ready: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Finalize every recording of an ended attempt; returns {stream: status}.

    Completed or partial recordings are only tidied (raw deletion, missing thumbnails) unless
    `force`. A transient error is raised for the job to retry, except on its `last_try`, where
    the recording ends "failed" with the reason. `on_ready(stream, status)` is called as soon as
    a recording's result is saved (playable, if completed or partial), before its thumbnails.
    """
    plans, finished, keep_raw = await asyncio.to_thread(_start, attempt_id, force)
    results = {rec.stream: rec.status for rec, _ in finished}
    for rec, chunk_paths in finished:
        if rec.raw_deleted_at is not None:
            await asyncio.to_thread(delete_raw, chunk_paths)
        if not (rec.poster_path and rec.sprite_path):
            await _thumbnails(rec.id)
    current = {"index": 0, "value": 0.0}

    def progress(value: float) -> None:
        current["value"] = value
        if on_progress:
            on_progress((current["index"] + value) / len(plans))

    async def write_progress() -> None:
        written = None
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            value = (plans[current["index"]].recording_id, round(current["value"], 3))
            if value != written:
                await asyncio.to_thread(_save_progress, *value)
                written = value

    writer = asyncio.create_task(write_progress()) if plans else None
    try:
        for index, plan in enumerate(plans):
            current["index"], current["value"] = index, 0.0
            try:
                outcome = await convert(plan, progress)
            except FinalizeError as exc:
                outcome = Outcome(RecordingStatus.failed, failure_reason=str(exc))
            except Exception as exc:
                if not last_try:
                    raise
                outcome = Outcome(RecordingStatus.failed, failure_reason=f"processing failed: {exc}"[:500])
            await asyncio.to_thread(_save, plan, outcome, keep_raw)
            results[plan.stream] = outcome.status
            if on_ready:
                on_ready(plan.stream, outcome.status)
            if outcome.mp4_path:
                # The live preview (media/preview.py) has served its purpose.
                for stale in absolute(plan.out_dir).glob(f"{plan.stream}_preview.*"):
                    stale.unlink(missing_ok=True)
                if not keep_raw:
                    await asyncio.to_thread(delete_raw, plan.chunk_paths)
                await _thumbnails(plan.recording_id)
    finally:
        if writer:
            writer.cancel()
    return results
