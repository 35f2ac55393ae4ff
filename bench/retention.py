"""Retention run cost: deleting the expired media of many attempts, against just deleting the files.

Builds a private database and storage folder with attempts laid out as ingest and processing
leave them (raw chunks, MP4, poster, sprite, snapshots), half of them expired. Measures the dry run
(plan) and the real run, and as the baseline `shutil.rmtree` of an identical copy of the expired
attempts' folders, in the same run: the run's extra cost is the database work and the bookkeeping
that makes it crash-safe. The last line printed is one JSON object.

    python bench/retention.py [--quick] [--attempts 400] [--chunks 200]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = tempfile.TemporaryDirectory(prefix="bench-retention-")
os.environ["PROCTOR_DATA_DIR"] = _tmp.name  # before proctor_app reads its configuration
os.environ.pop("PROCTOR_DATABASE_URL", None)
os.environ.pop("PROCTOR_STORAGE_DIR", None)

import sqlalchemy as sa  # noqa: E402

from proctor_app.db import migrate, session_scope  # noqa: E402
from proctor_app.media import retention, storage  # noqa: E402
from proctor_app.models import Chunk, Recording, RecordingStatus, Segment, Snapshot, utcnow  # noqa: E402
from tests.support.factories import make_attempt, make_exam, make_user  # noqa: E402

CHUNK_BYTES = 512  # the sizes do not matter for deleting; the file count does
SNAPSHOTS = 10


def _write(relative: str, size: int) -> None:
    path = storage.storage_root() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def build(attempts: int, chunks: int, now) -> list[str]:
    """Half the attempts ended 100 days ago (expired under 30 days' retention), half yesterday.
    Returns the storage folders of the expired ones."""
    expired_folders = []
    with session_scope() as db:
        exam = make_exam(db, title="Bench exam")
        for n in range(attempts):
            end = now - timedelta(days=100 if n % 2 == 0 else 1)
            started = end - timedelta(minutes=30)
            user = make_user(db, email=f"bench-{n}@example.com", name="Bench", password_hash="-")
            attempt = make_attempt(db, exam, user, status="submitted", started_at=started, deadline_at=end,
                                   ended_at=end)
            out = storage.processed_dir(attempt.id, started)
            rec = Recording(attempt_id=attempt.id, stream="camera", status=RecordingStatus.completed,
                            mp4_path=f"{out}/camera.mp4", poster_path=f"{out}/poster.jpg",
                            sprite_path=f"{out}/sprite_5s_160w.jpg", chunk_count=chunks)
            db.add(rec)
            db.flush()
            segment = Segment(recording_id=rec.id, number=0, chunk_count=chunks)
            db.add(segment)
            db.flush()
            for path in (rec.mp4_path, rec.poster_path, rec.sprite_path):
                _write(path, CHUNK_BYTES)
            rows = []
            for seq in range(chunks):
                path = storage.raw_chunk_path(attempt.id, started, "camera", 0, seq)
                _write(path, CHUNK_BYTES)
                rows.append(dict(segment_id=segment.id, seq=seq, size=CHUNK_BYTES, sha256="0" * 64,
                                 path=path, received_at=end, meta={}))
            db.execute(sa.insert(Chunk), rows)
            for seq in range(SNAPSHOTS):
                path = storage.snapshot_path(attempt.id, started, seq)
                _write(path, CHUNK_BYTES)
                db.add(Snapshot(attempt_id=attempt.id, seq=seq, path=path, size=CHUNK_BYTES, sha256="0" * 64))
            if n % 2 == 0:
                expired_folders += retention._attempt_folders(attempt)
    return expired_folders


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small data set, well within 60 s")
    parser.add_argument("--attempts", type=int, default=400)
    parser.add_argument("--chunks", type=int, default=200, help="raw chunks per attempt")
    args = parser.parse_args()
    if args.quick:
        args.attempts, args.chunks = 60, 100
    migrate()
    now = utcnow()
    expired_folders = build(args.attempts, args.chunks, now)

    # Baseline: the same folders copied elsewhere and removed with rmtree.
    root = storage.storage_root()
    copy_root = Path(_tmp.name) / "baseline"
    for folder in expired_folders:
        shutil.copytree(root / folder, copy_root / folder)
    _, baseline_s = timed(lambda: shutil.rmtree(copy_root))

    with session_scope() as db:
        plan, plan_s = timed(lambda: retention.plan(db, now))
    with session_scope() as db:
        result, run_s = timed(lambda: retention.run(db, now))
    files = result.files_deleted
    assert len(result.deleted_attempts) == (args.attempts + 1) // 2 and not result.errors
    assert all(not (root / f).exists() for f in expired_folders)

    print(f"{len(result.deleted_attempts)} expired attempts of {args.attempts}, {files} files "
          f"({args.chunks} chunks, 3 processed files, {SNAPSHOTS} snapshots each)")
    print(f"  baseline rmtree of the same files: {baseline_s:.3f} s = {files / baseline_s:.0f} files/s")
    print(f"  dry run (plan):                    {plan_s:.3f} s = {plan_s / baseline_s:.2f} x baseline")
    print(f"  run (plan, mark, delete, record):  {run_s:.3f} s = {run_s / baseline_s:.2f} x baseline, "
          f"{files / run_s:.0f} files/s")
    print(json.dumps({
        "attempts": args.attempts, "expired_attempts": len(result.deleted_attempts), "files": files,
        "planned_bytes": plan.total_bytes, "baseline_rmtree_s": round(baseline_s, 4),
        "plan_s": round(plan_s, 4), "run_s": round(run_s, 4),
        "ratio_plan_to_rmtree": round(plan_s / baseline_s, 2),
        "ratio_run_to_rmtree": round(run_s / baseline_s, 2),
        "run_files_per_s": round(files / run_s, 1),
    }))


if __name__ == "__main__":
    main()
