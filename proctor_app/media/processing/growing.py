"""A clean H.264 recording's MP4, kept growing during the exam by stream copy as its chunks
arrive, so that at submit only the last chunks are left to append and check.

The file is a fragmented MP4 (ftyp, a moov without samples, then moof+mdat fragments) in the
attempt's processed folder, `<stream>.growing.mp4`, its state beside it (`<stream>.growing.json`).
A step (grow_recording) reads only what arrived since the last one: the chunks from the cluster
where the last step stopped, each new chunk checked against its SHA-256 first. Cluster timestamps
are absolute, so the Matroska header followed by a later cluster demuxes as the whole stream does
(matroska.py finds cluster starts in the bytes, nothing is demuxed here). libavformat copies those
clusters into fragments that keep the source's timestamps (`frag_discont`: each fragment's decode
time is its first sample's, not a restart at 0); the first step's ftyp and moov
are the file's, later steps' fragments are appended with their numbers carried on. A cluster may
still be arriving, so a step stops before the last one found, except the final step (the segment
complete), which takes everything.

Each step's samples pass today's copy checks (convert.py's `copyable`) as they come: H.264 video,
Opus or AAC audio, no hole over FILL_MIN_S (within the step and from where the file ends),
keyframes at most MAX_KEYFRAME_GAP_S apart. Anything else (a second segment after a reload, a
codec change, chunks missing or damaged, not H.264 in Matroska) gives the file up ("dead"), and
processing takes today's path.

Crash safety: fragments are appended and fsynced, then the state is replaced durably; a step first
cuts the file back to the size its state names, so a step killed mid-append leaves bytes the next
one drops. A file without its state is deleted and begun again. One step at a time per recording
(a lock file), across processes: the job worker's steps, a preview's, finalize's final one.
"""

import base64
import hashlib
import io
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.processing.ffmpeg import FfmpegError, pipe_ffmpeg
from proctor_app.media.processing.formats import UnknownFormat, demuxer_for
from proctor_app.media.processing.matroska import NotMatroska, cluster_starts, header_length
from proctor_app.media.processing.mp4 import (
    fragment_samples,
    fragmented_tracks,
    renumber_fragments,
    split_fragments,
)
from proctor_app.media.processing.timeline import COPY_AUDIO, FILL_MIN_S, MAX_KEYFRAME_GAP_S
from proctor_app.media.storage import storage
from proctor_app.media.storage.layout import processed_dir
from proctor_app.models import Attempt, Chunk, Recording, RecordingStatus, Segment
from proctor_app.platform import locked_file, resumed_sha256

log = logging.getLogger("proctor_app.finalize")

FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof+frag_discont"
# Chunks read per copy (~5 minutes of 3 s chunks).
STEP_CHUNKS = 100
# What a step may grow: a recording still taking chunks, or (final) one its finalize holds.
GROWABLE = (RecordingStatus.not_started, RecordingStatus.in_progress)


def growing_path(out_dir: str, stream: str) -> str:
    return f"{out_dir}/{stream}.growing.mp4"


def state_path(out_dir: str, stream: str) -> str:
    return f"{out_dir}/{stream}.growing.json"


def _lock_path(out_dir: str, stream: str) -> Path:
    return storage.absolute(f"{out_dir}/.{stream}.growing.lock")


@dataclass
class GrowState:
    """Where the growing file stands (its JSON beside it)."""

    header: str = ""  # the Matroska header (to the first cluster), base64
    next_seq: int = 0  # the chunk where the next unread cluster starts
    next_at: int = 0  # and its offset in that chunk
    checked_seq: int = -1  # chunks up to this one matched their SHA-256
    size: int = 0  # bytes of the file that are whole fragments
    init_size: int = 0  # bytes of its ftyp and moov
    fragments: int = 0  # the last fragment's number
    shift_s: float = 0.0  # added to every timestamp, so that none is negative
    start_s: float | None = None  # the first sample's time in the file
    end_s: float = 0.0  # where its last sample ends
    track_ends: dict[str, float] = field(default_factory=dict)  # track id -> its last sample's end
    last_key_s: float | None = None  # the last video keyframe
    sha256: str | None = ""  # the saved SHA-256 state of the file's `size` bytes (None: unavailable)
    complete: bool = False  # the segment's last chunk is in
    dead: str = ""  # why growing stopped (processing then takes today's path)


@dataclass(frozen=True)
class ChunkFile:
    seq: int
    path: Path
    sha256: str


class _GiveUp(Exception):
    pass


def _load(out_dir: str, stream: str) -> GrowState | None:
    """The state, with the file cut back to it; None (and no file) when there is none."""
    mp4 = storage.absolute(growing_path(out_dir, stream))
    state_file = storage.absolute(state_path(out_dir, stream))
    try:
        state = GrowState(**json.loads(state_file.read_bytes()))
    except FileNotFoundError:
        mp4.unlink(missing_ok=True)  # a first step that died before its state: begin again
        return None
    if state.dead:
        return state
    try:
        with open(mp4, "r+b") as f:
            if os.fstat(f.fileno()).st_size != state.size:
                log.warning("%s: cut back to %s bytes after an interrupted step", mp4.name, state.size)
                f.truncate(state.size)
    except FileNotFoundError:  # the file went (by hand): begin again
        state_file.unlink()
        return None
    return state


def _save(out_dir: str, stream: str, state: GrowState) -> None:
    storage.write_durably(state_path(out_dir, stream), json.dumps(asdict(state)).encode())


def discard(out_dir: str, stream: str) -> None:
    """The growing file and its state, gone (after finalize, or when today's path made the MP4)."""
    for relative in (growing_path(out_dir, stream), state_path(out_dir, stream)):
        storage.absolute(relative).unlink(missing_ok=True)
    _lock_path(out_dir, stream).unlink(missing_ok=True)


class _Stream:
    """Bytes read front to back, as through a pipe: the header's SeekHead and Cues point into the
    whole recording, not into a step's bytes, so the demuxer must not seek by them."""

    def __init__(self, data: bytes):
        self.read = io.BytesIO(data).read


class _NeedsFfmpeg(Exception):
    pass


def _remux(payload: bytes, shift_s: float) -> bytes:
    """Matroska clusters (after their header) to MP4 fragments with the source's timestamps, by
    stream copy: in this process (PyAV; a step costs 45 % less CPU than with the ffmpeg command,
    bench/finalize.py --submit-to-ready), and with that command for a step whose packets before its
    first keyframe came without a decode time, which ffmpeg's own guess fills in."""
    try:
        return _copy_in_process(payload, shift_s)
    except _NeedsFfmpeg:
        offset = ["-output_ts_offset", f"{shift_s:.6f}"] if shift_s else []
        return pipe_ffmpeg(["-f", "matroska", "-protocol_whitelist", "pipe", "-i", "pipe:0",
                            # packets before the step's first keyframe decode from the previous step's
                            "-c", "copy", "-copyinkf", "-copyts", "-use_editlist", "1", *offset,
                            "-f", "mp4", "-movflags", FRAGMENTED, "pipe:1"], payload)


def _copy_in_process(payload: bytes, shift_s: float) -> bytes:
    """The same copy as the ffmpeg command in _remux, every packet kept (those before the first
    keyframe too); raises _NeedsFfmpeg for a packet without a decode time."""
    options = {"movflags": FRAGMENTED, "use_editlist": "1"}
    if shift_s:
        options["output_ts_offset"] = f"{shift_s:.6f}"
    out = io.BytesIO()
    try:
        with av.open(_Stream(payload), format="matroska") as source, \
                av.open(out, mode="w", format="mp4", options=options) as target:
            copies = {}
            # As ffmpeg maps by default: the first video and the first audio stream.
            for stream in [*source.streams.video[:1], *source.streams.audio[:1]]:
                copy = copies[stream.index] = target.add_stream_from_template(stream)
                copy.time_base = stream.time_base
            for packet in source.demux():
                copy = copies.get(packet.stream.index)
                if copy is None or packet.size == 0:  # the empty packet that ends a stream
                    continue
                if packet.dts is None:
                    raise _NeedsFfmpeg
                packet.stream = copy
                target.mux(packet)
    except av.FFmpegError as exc:
        raise FfmpegError(f"the stream copy failed: {exc}") from exc
    return out.getvalue()


def _check(state: GrowState, tracks: dict, samples: dict, final: bool) -> None:
    """Today's copy checks on a step's samples, continuing from where the file ends."""
    video = [i for i, t in tracks.items() if t.handler == "vide"]
    if not video or tracks[video[0]].codec != "h264":
        raise _GiveUp("the video is not H.264")
    if any(t.handler == "soun" and t.codec not in COPY_AUDIO for t in tracks.values()):
        raise _GiveUp("the audio is neither Opus nor AAC")
    for track_id, found in samples.items():
        track = tracks[track_id]
        times = [s.decode / track.timescale for s in found]
        before = state.track_ends.get(str(track_id))
        marks = ([before] if before is not None else []) + times
        if track_id == video[0] and any(b - a > FILL_MIN_S for a, b in zip(marks, marks[1:])):
            raise _GiveUp("a hole in the video")
        end = (found[-1].decode + found[-1].duration) / track.timescale
        state.track_ends[str(track_id)] = end
        state.end_s = max(state.end_s, end)
        state.start_s = times[0] if state.start_s is None else min(state.start_s, times[0])
        if track_id == video[0]:
            for t, sample in zip(times, found):
                if sample.sync:
                    if state.last_key_s is not None and t - state.last_key_s > MAX_KEYFRAME_GAP_S:
                        raise _GiveUp("keyframes too far apart to seek")
                    state.last_key_s = t
    if final and (state.last_key_s is None or state.end_s - state.last_key_s > MAX_KEYFRAME_GAP_S):
        raise _GiveUp("keyframes too far apart to seek")


def _read_new(state: GrowState, chunks: list[ChunkFile]) -> tuple[bytes, list[tuple[int, int]]]:
    """The bytes from where the last step stopped, each chunk not checked yet checked first;
    and (seq, its offset in those bytes) of each chunk read."""
    parts, starts, at = [], [], 0
    for chunk in chunks:
        body = chunk.path.read_bytes()
        if chunk.seq > state.checked_seq:
            if hashlib.sha256(body).hexdigest() != chunk.sha256:
                raise _GiveUp(f"chunk {chunk.seq} does not match its SHA-256")
            state.checked_seq = chunk.seq
        if chunk.seq == state.next_seq:
            body = body[state.next_at:]
        parts.append(body)
        starts.append((chunk.seq, at))
        at += len(body)
    return b"".join(parts), starts


def _step(out_dir: str, stream: str, state: GrowState, chunks: list[ChunkFile], final: bool) -> None:
    """Append the complete clusters of `chunks` (from state.next_seq); all of them when final."""
    data, starts = _read_new(state, chunks)
    header = base64.b64decode(state.header)
    body = 0
    if not header:
        length = header_length(data)
        if length is None:
            if final:
                raise _GiveUp("the segment has no cluster")
            return
        header, body = data[:length], length
    cut = len(data) if final else cluster_starts(data, body).last
    if cut is None or cut <= body:
        if final:
            raise _GiveUp("nothing to append")
        return
    payload = header + data[body:cut]
    first = state.size == 0
    try:
        out = _remux(payload, state.shift_s)
        init, fragments = split_fragments(out)
        if first:
            tracks = fragmented_tracks(init[_moov_payload(init):])
            samples = fragment_samples(fragments, tracks)
            lowest = min((s[0].decode / tracks[i].timescale for i, s in samples.items() if s), default=0.0)
            if lowest < 0:  # Opus pre-skip: every track shifted alike, so that none starts below 0
                state.shift_s = math.ceil(-lowest * 1e6) / 1e6
                init, fragments = split_fragments(_remux(payload, state.shift_s))
        else:
            with open(storage.absolute(growing_path(out_dir, stream)), "rb") as f:
                init = f.read(state.init_size)
    except FfmpegError as exc:
        raise _GiveUp(f"the stream copy failed: {exc}") from exc
    tracks = fragmented_tracks(init[_moov_payload(init):])
    _check(state, tracks, fragment_samples(fragments, tracks), final)
    if first and not _video_decodes(init + fragments):
        # e.g. H.264 whose parameter sets come only in the stream: the moov, written before any
        # packet, has none, where today's copy takes them from the first keyframe.
        raise _GiveUp("the first fragments do not decode")
    numbered = bytearray(fragments)
    state.fragments = renumber_fragments(numbered, state.fragments)
    fragments = bytes(numbered)
    mp4 = storage.absolute(growing_path(out_dir, stream))
    with open(mp4, "wb" if first else "r+b") as f:
        f.seek(state.size)
        if first:
            f.write(init)
            state.init_size = len(init)
        f.write(fragments)
        f.flush()
        os.fsync(f.fileno())
        state.size = f.tell()
    if state.sha256 is not None:
        state.sha256 = resumed_sha256(state.sha256, init + fragments if first else fragments)
    state.header = base64.b64encode(header).decode()
    seq, at = next((seq, at) for seq, at in reversed(starts) if at <= cut)
    state.next_seq, state.next_at = seq, cut - at + (state.next_at if seq == starts[0][0] else 0)
    state.complete = final


def _video_decodes(data: bytes) -> bool:
    """Whether the first video frame of an MP4 held in memory decodes."""
    try:
        with av.open(io.BytesIO(data), format="mp4") as container:
            return next(container.decode(video=0), None) is not None
    except av.FFmpegError:
        return False


def _moov_payload(init: bytes) -> int:
    """Where the moov box's payload starts in an ftyp+moov."""
    at = 0
    while at + 8 <= len(init):
        size, kind = int.from_bytes(init[at:at + 4], "big"), init[at + 4:at + 8]
        if kind == b"moov":
            return at + 8
        at += size
    raise FfmpegError("the stream copy wrote no moov")


def _read_rows(recording_id: int, final: bool, next_seq: int) -> tuple[str, str, list[ChunkFile]] | str | None:
    """(processed folder, stream, chunks from next_seq) of a recording to grow; a reason string
    when it cannot grow; None when there is nothing (more) to do now."""
    with session_scope() as db:
        recording = db.get(Recording, recording_id)
        if recording is None:
            return None
        attempt = db.get(Attempt, recording.attempt_id)
        if attempt.started_at is None or (recording.status not in GROWABLE and not final):
            return None
        segments = db.exec(select(Segment).where(Segment.recording_id == recording_id)
                           .order_by(Segment.number)).all()
        if not segments or segments[0].contiguous_seq < 0:
            return None if not final else "nothing was uploaded"
        if len(segments) > 1:
            return "a new segment began (a reload or a device change)"
        segment = segments[0]
        mime = segment.mime_type or recording.mime_type
        try:
            if demuxer_for(mime) != "matroska" or not ("avc1" in mime or "h264" in mime):
                return f"not H.264 in Matroska ({mime})"
        except UnknownFormat:
            return f"an unknown type ({mime})"
        if final and segment.chunk_count != segment.contiguous_seq + 1:
            return "chunks missing"
        rows = db.exec(select(Chunk.seq, Chunk.path, Chunk.sha256).where(
            Chunk.segment_id == segment.id, Chunk.seq >= next_seq, Chunk.seq <= segment.contiguous_seq)
            .order_by(Chunk.seq)).all()
        chunks = [ChunkFile(seq, storage.absolute(path), digest) for seq, path, digest in rows]
        return processed_dir(attempt.id, attempt.started_at), recording.stream, chunks


def _where(recording_id: int) -> tuple[str, str] | None:
    with session_scope() as db:
        recording = db.get(Recording, recording_id)
        attempt = recording and db.get(Attempt, recording.attempt_id)
        if attempt is None or attempt.started_at is None:
            return None
        return processed_dir(attempt.id, attempt.started_at), recording.stream


def grow_recording(recording_id: int, final: bool = False) -> GrowState | None:
    """Append what arrived since the last step (all of the segment if `final`, which finalize
    asks once the recording takes no more chunks, and only of a file that exists: one never
    begun is left to today's path). Returns the state (dead, with why, when the recording cannot
    grow), or None when there is nothing to grow. Reads at most STEP_CHUNKS chunks per copy,
    the state saved after each, so a step that fell behind holds little in memory."""
    where = _where(recording_id)
    if where is None:
        return None
    out_dir, stream = where
    begun = storage.absolute(state_path(out_dir, stream)).exists()
    if not begun and (final or _read_rows(recording_id, final, 0) is None):
        return None  # nothing uploaded yet: no folder, lock or state made for it
    storage.absolute(out_dir).mkdir(parents=True, exist_ok=True)
    with locked_file(_lock_path(out_dir, stream)):
        state = _load(out_dir, stream)
        if (state is None and final) or (state is not None and (state.dead or state.complete)):
            return state
        found = _read_rows(recording_id, final, state.next_seq if state else 0)
        if found is None:
            return state
        state = state or GrowState()
        try:
            if isinstance(found, str):
                raise _GiveUp(found)
            chunks = found[2]
            while True:
                batch, chunks = chunks[:STEP_CHUNKS], chunks[STEP_CHUNKS:]
                before = (state.next_seq, state.next_at)
                _step(out_dir, stream, state, batch, final and not chunks)
                if not chunks:
                    break
                if (state.next_seq, state.next_at) == before:
                    raise _GiveUp(f"a cluster longer than {STEP_CHUNKS} chunks")
                _save(out_dir, stream, state)
                chunks = [c for c in batch if c.seq >= state.next_seq] + chunks
        except (_GiveUp, NotMatroska) as exc:
            log.info("recording %s: not grown further: %s", recording_id, exc)
            storage.absolute(growing_path(out_dir, stream)).unlink(missing_ok=True)
            state = GrowState(dead=str(exc) or "not Matroska")
        _save(out_dir, stream, state)
        return state


def growing_file(out_dir: str, stream: str) -> tuple[str, GrowState] | None:
    """(path, state) of a recording's growing file that is alive and has fragments, else None."""
    try:
        state = GrowState(**json.loads(storage.absolute(state_path(out_dir, stream)).read_bytes()))
    except FileNotFoundError:
        return None
    return None if state.dead or not state.fragments else (growing_path(out_dir, stream), state)


def grown_preview(recording_id: int, out_dir: str, stream: str, now: float,
                  min_age_s: float) -> tuple[str, float, int] | None:
    """The growing file as a live preview: (path, epoch seconds of its last step, bytes of whole
    fragments: a step may be appending past them), after one more step when that is `min_age_s`
    old; None when the recording has no growing file."""
    state = storage.absolute(state_path(out_dir, stream))
    try:
        if growing_file(out_dir, stream) is None:
            return None
        if now - state.stat().st_mtime >= min_age_s:
            grow_recording(recording_id)
        found = growing_file(out_dir, stream)
        return found and (found[0], state.stat().st_mtime, found[1].size)
    except FileNotFoundError:  # finalize took it meanwhile
        return None
