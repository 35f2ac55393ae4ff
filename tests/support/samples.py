"""MediaRecorder-like recordings for tests and benchmarks, stored through the real ingest path.

A browser recorder (MediaRecorder with a timeslice) produces one live Matroska/WebM byte stream
per instance (no cues, no duration) and hands it over in pieces cut at arbitrary byte offsets.
`encode` makes such a stream with ffmpeg (written through a pipe, so it has no index), `cut`
slices it into pieces of about `chunk_s` seconds, and `upload_segment` stores the pieces with
the app's upload store, exactly as the upload route does.
"""

import hashlib
import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from proctor_app.db import session_scope
from proctor_app.media.ingest.checks import ChunkUpload
from proctor_app.media.processing.ffmpeg import FFMPEG
from proctor_app.models import Attempt, AttemptStatus, ProctoringEvent, utcnow
from proctor_app.runtime import upload_store
from proctor_app.services.uploads import issue_upload_token
from tests.support.factories import make_attempt, make_exam, make_user

MIME = {"h264": "video/x-matroska;codecs=avc1,opus", "vp8": "video/webm;codecs=vp8,opus"}
# Longer recordings loop a clip of at most this length (stream copy: seconds, not minutes).
CLIP_MAX_S = 30
# A webcam-like picture: a slowly changing background, a moving subject, sensor noise.
WEBCAM_SOURCE = ("gradients=s={w}x{h}:r={fps}:speed=0.002[bg];"
                 "testsrc2=s={sw}x{sh}:r={fps}[fg];"
                 "[bg][fg]overlay=x='(W-w)/2+60*sin(t/3)':y='(H-h)/2+20*sin(t/2)',"
                 "noise=alls=6:allf=t,format=yuv420p")


def _ffmpeg(*args: str, stdout=None) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                   check=True, stdout=stdout)


def encode(path: Path, seconds: float, codec: str, size: tuple[int, int] = (640, 480), fps: int = 30,
           keyframe_s: float = 2.0, bitrate_kbps: int = 600, clip_s: float = CLIP_MAX_S,
           cluster_ms: int | None = None) -> Path:
    """A live (unindexed) recording like Chromium's MediaRecorder: H.264 in Matroska or VP8 in
    WebM, with Opus audio (a tone); longer than `clip_s`, a clip of that length loops. With
    `cluster_ms`, a cluster begins at least that often, keyframe or not."""
    w, h = size
    clip_s = min(seconds, clip_s)
    # Keyframes only where asked (like a browser's encoder): no scene-cut keyframes.
    video = (["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-sc_threshold", "0"]
             if codec == "h264" else
             ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
    clip = path.with_name(f"{path.stem}.clip.mkv")
    _ffmpeg("-f", "lavfi", "-i", WEBCAM_SOURCE.format(w=w, h=h, fps=fps, sw=w // 3, sh=h // 3),
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", f"{clip_s:.3f}",
            *video, "-b:v", f"{bitrate_kbps}k", "-g", str(max(1, round(keyframe_s * fps))),
            "-c:a", "libopus", "-b:a", "32k", "-ac", "1", str(clip))
    loops = max(0, int(-(-seconds // clip_s)) - 1)
    with open(path, "wb") as out:
        clusters = ["-cluster_time_limit", str(cluster_ms)] if cluster_ms else []
        _ffmpeg("-stream_loop", str(loops), "-i", str(clip), "-t", f"{seconds:.3f}", "-c", "copy", *clusters,
                "-f", "matroska" if codec == "h264" else "webm", "pipe:1", stdout=out)
    clip.unlink()
    return path


def cut(data: bytes, seconds: float, chunk_s: float = 3.0) -> list[bytes]:
    """Equal byte slices of about `chunk_s` seconds each (boundaries fall anywhere)."""
    count = max(1, round(seconds / chunk_s))
    step = -(-len(data) // count)
    return [data[i:i + step] for i in range(0, len(data), step)]


@dataclass(frozen=True)
class SampleAttempt:
    attempt_id: int
    started_at: datetime
    token: str


def start_attempt(started_at: datetime, duration_minutes: int = 120, screen: bool = False) -> SampleAttempt:
    """A new exam, candidate and attempt in progress since `started_at`, with an upload token."""
    tag = secrets.token_hex(4)
    with session_scope() as db:
        exam = make_exam(db, title=f"Sample recording exam {tag}", duration_minutes=duration_minutes,
                         recording=True, screen_recording=screen, live_video=False)
        candidate = make_user(db, email=f"sample-{tag}@example.com", name=f"Sample Candidate {tag}")
        attempt = make_attempt(db, exam, candidate, status=AttemptStatus.in_progress,
                               consent_at=started_at, started_at=started_at,
                               deadline_at=started_at + timedelta(minutes=duration_minutes))
        grant = issue_upload_token(db, attempt)
        return SampleAttempt(attempt.id, started_at, grant.token)


def _ms(moment: datetime) -> str:
    return str(round(moment.timestamp() * 1000))


@dataclass(frozen=True)
class Piece:
    """One blob as the recorder hands it over, with its wall-clock span; body None = lost."""

    body: bytes | None
    start: datetime
    end: datetime


def evenly(bodies: list[bytes | None], started_at: datetime, seconds: float) -> list[Piece]:
    step = seconds / len(bodies)
    return [Piece(body, started_at + timedelta(seconds=i * step), started_at + timedelta(seconds=(i + 1) * step))
            for i, body in enumerate(bodies)]


def upload_segment(sample: SampleAttempt, stream: str, number: int, pieces: list[Piece], mime: str) -> None:
    """Store a segment's pieces (seq = position) as the upload route does; lost ones are skipped."""
    for seq, piece in enumerate(pieces):
        if piece.body is None:
            continue
        upload_store.store_chunk(sample.token, ChunkUpload(
            attempt_id=sample.attempt_id, stream=stream, segment=number, seq=seq, body=piece.body,
            sha256=hashlib.sha256(piece.body).hexdigest(), start_ms=_ms(piece.start),
            end_ms=_ms(piece.end), mime_type=mime, meta=None))


def end_attempt(sample: SampleAttempt, ended_at: datetime) -> None:
    """Submitted at `ended_at`, with the browser's "uploads flushed" report, so processing may
    start at once. (Not through services.attempts, which would also queue a finalize job.)"""
    with session_scope() as db:
        attempt = db.get(Attempt, sample.attempt_id)
        attempt.status, attempt.ended_at = AttemptStatus.submitted, ended_at
        db.add(attempt)
        db.add(ProctoringEvent(attempt_id=attempt.id, kind="uploads_flushed", server_time=utcnow(),
                               data={}))
