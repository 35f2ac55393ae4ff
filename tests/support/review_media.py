"""A finalized attempt for review tests: real MP4s made with the bundled ffmpeg, a poster, a
sprite, snapshots, events and Recording rows, in the test session's database and storage.

Each call makes its own exam and candidate, so test modules never share or collide on rows.
"""

import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import imageio_ffmpeg

from proctor_app.db import session_scope
from proctor_app.media.storage import layout, storage
from proctor_app.models import AttemptStatus, ProctoringEvent, Recording, RecordingStatus, Snapshot, utcnow
from tests.support.factories import assign, make_attempt, make_exam, make_user, user_id

DURATION_S = 12
SPRITE_EVERY_S = 2
SPRITE_WIDTH = 80
# (seconds into the attempt, kind, severity)
EVENTS = [(2.0, "face_missing", "info"), (5.0, "tab_hidden", "warning"), (9.0, "second_person", "critical")]
SNAPSHOT_TIMES = [3.0, 7.0]


@dataclass(frozen=True)
class ReviewAttempt:
    attempt_id: int
    candidate_id: int
    exam_id: int
    started_at: datetime
    camera_mp4: Path
    poster: Path
    sprite: Path
    snapshots: list[Path]


def _ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args], check=True)


def _make_mp4(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A keyframe every second, so seeks land exactly where asked.
    _ffmpeg("-f", "lavfi", "-i", f"{source}=size=320x240:rate=15", "-t", str(DURATION_S),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15",
            "-movflags", "+faststart", str(path))


def make_review_attempt(status: str = RecordingStatus.completed, ended_days_ago: float = 1.0,
                        assign_proctor: bool = True) -> ReviewAttempt:
    """`assign_proctor`: the demo proctor is assigned to the new exam (proctors review only those)."""
    tag = secrets.token_hex(4)
    started = utcnow() - timedelta(days=ended_days_ago, seconds=DURATION_S)
    with session_scope() as db:
        exam = make_exam(db, title=f"Review test exam {tag}", duration_minutes=30)
        candidate = make_user(db, email=f"review-{tag}@example.com", name=f"Review Candidate {tag}")
        attempt = make_attempt(db, exam, candidate, status=AttemptStatus.submitted, consent_at=started,
                               started_at=started, deadline_at=started + timedelta(minutes=30),
                               ended_at=started + timedelta(seconds=DURATION_S))
        if assign_proctor:
            assign(db, exam, user_id("proctor@example.com"))
        attempt_id, exam_id, candidate_id = attempt.id, exam.id, candidate.id

    folder = layout.processed_dir(attempt_id, started)
    camera_rel, screen_rel = f"{folder}/camera.mp4", f"{folder}/screen.mp4"
    poster_rel = f"{folder}/camera-poster.jpg"
    sprite_rel = f"{folder}/camera-sprite_{SPRITE_EVERY_S}s_{SPRITE_WIDTH}w.jpg"
    expired = status == RecordingStatus.expired
    if not expired:
        _make_mp4(storage.absolute(camera_rel), "testsrc")
        _make_mp4(storage.absolute(screen_rel), "testsrc2")
        _ffmpeg("-i", str(storage.absolute(camera_rel)), "-frames:v", "1", str(storage.absolute(poster_rel)))
        tiles = DURATION_S // SPRITE_EVERY_S
        _ffmpeg("-i", str(storage.absolute(camera_rel)), "-vf",
                f"fps=1/{SPRITE_EVERY_S},scale={SPRITE_WIDTH}:-2,tile={tiles}x1", "-frames:v", "1",
                str(storage.absolute(sprite_rel)))
    snapshot_paths = []
    with session_scope() as db:
        for stream, rel in (("camera", camera_rel), ("screen", screen_rel)):
            db.add(Recording(
                attempt_id=attempt_id, stream=stream, status=status, mime_type="video/webm",
                chunk_count=4, byte_count=1000, gap_count=1 if stream == "camera" else 0,
                started_at=started, ended_at=started + timedelta(seconds=DURATION_S),
                mp4_path="" if expired else rel, duration_s=float(DURATION_S), codec="h264",
                poster_path="" if expired or stream != "camera" else poster_rel,
                sprite_path="" if expired or stream != "camera" else sprite_rel,
                gaps=[{"start_s": 6.0, "end_s": 7.0, "cause": "network"}] if stream == "camera" else [],
                progress=0.4 if status == RecordingStatus.processing else 1.0, expired_at=utcnow() if expired else None))
        for t, kind, severity in EVENTS:
            db.add(ProctoringEvent(attempt_id=attempt_id, server_time=started + timedelta(seconds=t),
                                   kind=kind, severity=severity, data={"source": "test"}))
        for seq, t in enumerate(SNAPSHOT_TIMES):
            rel = layout.snapshot_path(attempt_id, started, seq)
            if not expired:
                storage.absolute(rel).parent.mkdir(parents=True, exist_ok=True)
                _ffmpeg("-ss", str(t), "-i", str(storage.absolute(camera_rel)), "-frames:v", "1",
                        str(storage.absolute(rel)))
                snapshot_paths.append(storage.absolute(rel))
            db.add(Snapshot(attempt_id=attempt_id, seq=seq, taken_at=started + timedelta(seconds=t),
                            path=rel, size=0, sha256=""))
    return ReviewAttempt(attempt_id=attempt_id, candidate_id=candidate_id, exam_id=exam_id, started_at=started,
                         camera_mp4=storage.absolute(camera_rel), poster=storage.absolute(poster_rel),
                         sprite=storage.absolute(sprite_rel), snapshots=snapshot_paths)

