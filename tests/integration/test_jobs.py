"""The durable job queue: claims, retries with backoff, permanent failures, deferral, stale and
dead workers, the concurrency limit, PostgreSQL row locks shared by two processes, a worker
process killed mid-job, and the finalize job a submit queues. (Submits that stay fast while the
server processes: tests/browser/test_submit_latency.py.)"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, SQLModel, select

from proctor_app.db import engine_for, session_scope
from proctor_app.media.evidence.manifest import manifest_path
from proctor_app.media.jobs import queue
from proctor_app.media.jobs.errors import Defer, PermanentError
from proctor_app.media.jobs.worker import Handler, JobContext, Worker
from proctor_app.media.processing import mp4
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    Job,
    JobStatus,
    Recording,
    RecordingStatus,
    utcnow,
)
from proctor_app.services import attempts, processing
from tests.support.polling import wait_for
from tests.support.postgres import POSTGRES_URL
from tests.support.server import ROOT
from tests.support.submitting import open_attempts, timed_submit

pytestmark = pytest.mark.usefixtures("demo_db")


def _kind() -> str:
    """A job kind of this test only: the app server's worker (if running) never takes it."""
    return f"t_{uuid.uuid4().hex[:10]}"


def _job(job_id: int) -> Job:
    with session_scope() as db:
        return db.get(Job, job_id)


def _add(kind: str, n: int = 1, **fields) -> list[int]:
    with session_scope() as db:
        ids = []
        for _ in range(n):
            job = queue.enqueue(db, kind)
            for key, value in fields.items():
                setattr(job, key, value)
            db.add(job)
            db.flush()
            ids.append(job.id)
        return ids


async def _run_worker_until(worker: Worker, done, timeout: float = 20.0) -> None:
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(done):
            assert time.monotonic() < deadline, "the worker did not get there in time"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _statuses(ids: list[int]) -> list[str]:
    with session_scope() as db:
        return [db.get(Job, i).status for i in ids]


# ---------------------------------------------------------------------------------------------
# Claiming


def test_claims_take_due_jobs_in_order_each_once():
    kind = _kind()
    first, second = _add(kind, 2)
    later = _add(kind, run_after=utcnow() + timedelta(hours=1))[0]
    with session_scope() as db:
        assert queue.claim(db, "w1", [kind]).id == first
    with session_scope() as db:
        assert queue.claim(db, "w2", [kind]).id == second
    with session_scope() as db:
        assert queue.claim(db, "w3", [kind]) is None  # the third is not due yet
    job = _job(first)
    assert (job.status, job.worker, job.tries) == (JobStatus.running, "w1", 1)
    assert _job(later).status == JobStatus.queued


def test_kinds_listed_first_are_claimed_first():
    ladder, mp4 = _kind(), _kind()
    older = _add(ladder)[0]
    newer = _add(mp4)[0]
    with session_scope() as db:
        assert queue.claim(db, "w1", [mp4, ladder]).id == newer
    with session_scope() as db:
        assert queue.claim(db, "w1", [mp4, ladder]).id == older


def test_concurrent_claims_on_sqlite_never_share_a_job():
    kind = _kind()
    ids = set(_add(kind, 30))
    taken: list[tuple[str, int]] = []

    def claimer(name: str) -> None:
        while True:
            with session_scope() as db:
                job = queue.claim(db, name, [kind])
            if job is None:
                return
            taken.append((name, job.id))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(job_id for _, job_id in taken) == sorted(ids)


# ---------------------------------------------------------------------------------------------
# Running: retries, permanent errors, deferral, limit, shutdown


def test_errors_are_retried_with_backoff_then_the_job_fails_with_its_reason():
    kind = _kind()
    failures: list[tuple[int | None, str]] = []

    async def broken(ctx: JobContext) -> None:
        raise RuntimeError(f"disk on fire (try {ctx.tries})")

    worker = Worker(handlers={kind: Handler(broken, lambda a, r: failures.append((a, r)))},
                         concurrency=1, poll_s=0.05)
    job_id = _add(kind, max_tries=3)[0]
    for attempt in (1, 2):
        asyncio.run(_run_worker_until(worker, lambda: _job(job_id).tries == attempt
                                      and _job(job_id).status == JobStatus.queued))
        job = _job(job_id)
        assert job.last_error == f"disk on fire (try {attempt})"
        wait_s = (job.run_after - utcnow()).total_seconds()
        assert queue.backoff_s(attempt) - 2 < wait_s <= queue.backoff_s(attempt)
        with session_scope() as db:  # time passes
            db.get(Job, job_id).run_after = utcnow()
    assert queue.backoff_s(2) == 2 * queue.backoff_s(1)
    asyncio.run(_run_worker_until(worker, lambda: _job(job_id).status == JobStatus.failed))
    job = _job(job_id)
    assert job.tries == 3 and job.last_error == "disk on fire (try 3)" and job.finished_at
    assert failures == [(None, "disk on fire (try 3)")]


def test_a_permanent_error_fails_at_once_and_defer_costs_no_try():
    kind = _kind()
    calls = []

    async def handler(ctx: JobContext) -> None:
        calls.append(ctx.id)
        if ctx.payload.get("defer") and calls.count(ctx.id) == 1:
            raise Defer(0.1, "uploads still arriving")
        if ctx.payload.get("bad"):
            raise PermanentError("attempt 9 does not exist")
        ctx.report(0.5)

    with session_scope() as db:
        bad = queue.enqueue(db, kind, payload={"bad": True}).id
        deferred = queue.enqueue(db, kind, payload={"defer": True}).id
    worker = Worker(handlers={kind: Handler(handler)}, concurrency=2, poll_s=0.05)
    asyncio.run(_run_worker_until(worker, lambda: _statuses([bad, deferred]) == [JobStatus.failed, JobStatus.done]))
    assert (_job(bad).tries, _job(bad).last_error) == (1, "attempt 9 does not exist")
    assert calls.count(deferred) == 2 and _job(deferred).tries == 1  # the deferral was not counted
    assert _job(deferred).progress == 1.0 and _job(deferred).last_error == ""


def test_the_concurrency_limit_holds():
    kind = _kind()
    running, peak = 0, 0

    async def slow(ctx: JobContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.3)
        running -= 1

    ids = _add(kind, 6)
    worker = Worker(handlers={kind: Handler(slow)}, concurrency=2, poll_s=0.05)
    asyncio.run(_run_worker_until(worker, lambda: set(_statuses(ids)) == {JobStatus.done}))
    assert peak == 2


def test_a_stopping_worker_puts_its_running_job_back_without_counting_the_try():
    kind = _kind()
    started = threading.Event()

    async def endless(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    job_id = _add(kind)[0]
    worker = Worker(handlers={kind: Handler(endless)}, concurrency=1, poll_s=0.05)
    asyncio.run(_run_worker_until(worker, started.is_set))
    job = _job(job_id)
    assert (job.status, job.tries, job.worker) == (JobStatus.queued, 0, "")


# ---------------------------------------------------------------------------------------------
# Crashed workers


def test_a_stale_job_is_handed_back_and_its_old_worker_cannot_touch_it_any_more():
    kind = _kind()
    job_id = _add(kind)[0]
    with session_scope() as db:
        queue.claim(db, "old-worker", [kind])
    with session_scope() as db:
        db.get(Job, job_id).heartbeat_at = utcnow() - queue.STALE_AFTER - timedelta(seconds=1)
    with session_scope() as db:
        assert queue.requeue_stale(db, [kind]) == []
    assert _job(job_id).status == JobStatus.queued
    with session_scope() as db:
        assert queue.claim(db, "new-worker", [kind]).id == job_id
    with session_scope() as db:
        assert not queue.heartbeat(db, job_id, "old-worker", 0.9)
        assert not queue.finish(db, job_id, "old-worker")
    job = _job(job_id)
    assert (job.status, job.worker, job.tries) == (JobStatus.running, "new-worker", 2)


def test_a_stale_job_with_no_tries_left_fails_and_its_subject_is_cleaned_up():
    kind = _kind()
    cleaned = []
    job_id = _add(kind, status=JobStatus.running, worker="gone", tries=5, max_tries=5,
                  heartbeat_at=utcnow() - timedelta(minutes=5))[0]

    async def never(ctx: JobContext) -> None:
        raise AssertionError("a job with no tries left must not run")

    worker = Worker(handlers={kind: Handler(never, lambda a, r: cleaned.append(r))},
                         concurrency=1, poll_s=0.05)
    asyncio.run(_run_worker_until(worker, lambda: _job(job_id).status == JobStatus.failed))
    assert _job(job_id).last_error == "its worker stopped responding; no tries left"
    assert cleaned == ["its worker stopped responding; no tries left"]


def test_at_start_a_worker_takes_back_the_jobs_of_a_dead_process_on_its_host():
    kind = _kind()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not psutil.pid_exists(dead.pid)
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = socket.gethostname()
    orphan = _add(kind, status=JobStatus.running, worker=f"{host}:{dead.pid}:abcdef", tries=1,
                  heartbeat_at=utcnow())[0]
    alive = _add(kind, status=JobStatus.running, worker=f"{host}:{living.pid}:other", tries=1,
                 heartbeat_at=utcnow())[0]
    ran = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.id)

    worker = Worker(handlers={kind: Handler(handler)}, concurrency=1, poll_s=0.05)
    try:
        asyncio.run(_run_worker_until(worker, lambda: _job(orphan).status == JobStatus.done))
    finally:
        living.kill()
        living.wait()
    assert ran == [orphan] and _job(orphan).tries == 2
    assert _job(alive).status == JobStatus.running  # a live process's job is left alone


# ---------------------------------------------------------------------------------------------
# PostgreSQL: several processes share the queue

PG_WORKER = textwrap.dedent("""
    import asyncio, os, sys, time
    from contextlib import contextmanager
    from sqlalchemy import create_engine, text
    from sqlmodel import Session
    from proctor_app.media.jobs import queue
    from proctor_app.media.jobs.errors import Defer
    from proctor_app.media.jobs.errors import PermanentError
    from proctor_app.media.jobs.worker import Handler
    from proctor_app.media.jobs.worker import JobContext
    from proctor_app.media.jobs.worker import Worker
    from proctor_app.services import processing

    url, schema, kind = sys.argv[1:4]
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})

    @contextmanager
    def sessions():
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    async def record(ctx):
        with sessions() as db:
            db.execute(text("INSERT INTO executions (job_id, pid) VALUES (:j, :p)"),
                       {"j": ctx.id, "p": os.getpid()})
        await asyncio.sleep(0.05)

    def left():
        with sessions() as db:
            return db.execute(text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")).scalar()

    async def main():
        worker = Worker(handlers={kind: Handler(record)}, sessions=sessions, concurrency=4,
                             poll_s=0.01)
        task = asyncio.create_task(worker.run())
        while left():
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
""")


@contextmanager
def _pg_schema():
    schema = f"jobs_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        SQLModel.metadata.create_all(engine)
        yield engine, schema
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_skip_locked_passes_over_a_job_being_taken():
    kind = _kind()
    with _pg_schema() as (engine, _):
        with Session(engine) as db:
            for _ in range(2):
                queue.enqueue(db, kind)
            db.commit()
        with engine.connect() as holder:
            # Another process is in the middle of taking the first job: its row is locked.
            holder.begin()
            locked = holder.execute(text("SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE")).scalar()
            with Session(engine) as db:
                db.execute(text("SET lock_timeout = '2s'"))  # waiting would fail the test
                started = time.monotonic()
                job = queue.claim(db, "w2", [kind])
                assert time.monotonic() - started < 1.0
            assert job.id != locked and job.status == JobStatus.running
            holder.rollback()


@pytest.mark.postgres
def test_postgres_queue_shared_by_two_processes_runs_every_job_exactly_once():
    kind = _kind()
    with _pg_schema() as (engine, schema):
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE executions (job_id integer NOT NULL, pid integer NOT NULL)"))
        with Session(engine) as db:
            # Due once both processes are surely up, so they compete for every job.
            ids = [queue.enqueue(db, kind, delay_s=4).id for _ in range(60)]
            db.commit()
        procs = [subprocess.Popen([sys.executable, "-c", PG_WORKER, POSTGRES_URL, schema, kind], cwd=ROOT)
                 for _ in range(2)]
        for proc in procs:
            assert proc.wait(timeout=120) == 0
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT job_id, pid FROM executions")).all()
            statuses = conn.execute(text("SELECT DISTINCT status FROM jobs")).scalars().all()
    assert sorted(job_id for job_id, _ in runs) == sorted(ids)  # each exactly once
    assert {pid for _, pid in runs} == {p.pid for p in procs}  # both processes worked
    assert statuses == [JobStatus.done]


# ---------------------------------------------------------------------------------------------
# A worker process killed in the middle of processing

SETUP = textwrap.dedent("""
    from datetime import timedelta
    from pathlib import Path
    import os
    from proctor_app.db import migrate, session_scope
    from proctor_app.media.jobs import queue
    from proctor_app.media.jobs.errors import Defer
    from proctor_app.media.jobs.errors import PermanentError
    from proctor_app.media.jobs.worker import Handler
    from proctor_app.media.jobs.worker import JobContext
    from proctor_app.media.jobs.worker import Worker
    from proctor_app.services import processing
    from proctor_app.models import utcnow
    from tests.support import samples

    migrate()
    seconds = 40
    started = utcnow() - timedelta(seconds=seconds + 5)
    sample = samples.start_attempt(started)
    # Keyframes only every 20 s: re-encoded, so the job runs long enough to be killed.
    data = samples.encode(Path(os.environ["PROCTOR_DATA_DIR"]) / "rec.mkv", seconds, "h264",
                          keyframe_s=20, clip_s=20).read_bytes()
    samples.upload_segment(sample, "camera", 0, samples.evenly(samples.cut(data, seconds), started, seconds),
                           samples.MIME["h264"])
    samples.end_attempt(sample, started + timedelta(seconds=seconds))
    with session_scope() as db:
        print(processing.enqueue_finalize(db, sample.attempt_id).id)
""")


def test_a_worker_killed_mid_job_is_taken_over_and_leaves_exactly_one_output(tmp_path):
    env = dict(os.environ, PROCTOR_DATA_DIR=str(tmp_path))
    job_id = int(subprocess.run([sys.executable, "-c", SETUP], env=env, cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.split()[-1])
    engine = engine_for(f"sqlite:///{tmp_path / 'proctor.db'}")

    def state() -> tuple[Job, Recording]:
        with Session(engine) as db:
            job = db.get(Job, job_id)
            return job, db.exec(select(Recording).where(Recording.attempt_id == job.attempt_id)).one()

    worker_log = tmp_path / "worker.log"

    def start_worker() -> subprocess.Popen:
        with worker_log.open("a") as out:
            return subprocess.Popen([sys.executable, "-m", "proctor_app", "worker", "--concurrency", "1"],
                                    env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)

    def log() -> str:
        return worker_log.read_text()

    first = start_worker()
    try:
        # Killed as soon as its ffmpeg converts: waiting for progress let a fast conversion finish first.
        wait_for(lambda: state()[0].status == JobStatus.running
                 and psutil.Process(first.pid).children(recursive=True), 90, "the first worker to start ffmpeg")
        ffmpeg_pids = [p.pid for p in psutil.Process(first.pid).children(recursive=True)]
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    # The crash took ffmpeg along (no orphan writing into the next try's folder).
    wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                          for pid in ffmpeg_pids), 10, "ffmpeg to die with its worker")
    job, rec = state()
    assert (job.status, job.tries, rec.status) == (JobStatus.running, 1, RecordingStatus.processing), log()

    second = start_worker()
    try:
        # Same host, dead pid: taken back at once, not after the stale timeout.
        wait_for(lambda: state()[0].status == JobStatus.done, 120, "the second worker to finish the job")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    job, rec = state()
    assert (job.tries, rec.status) == (2, RecordingStatus.completed), log()
    folder = tmp_path / "storage" / Path(rec.mp4_path).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [Path(rec.mp4_path).name, Path(rec.poster_path).name, Path(rec.sprite_path).name,
         Path(manifest_path(rec)).name])
    mp4.verify_mp4(folder / Path(rec.mp4_path).name, 40)
    # Raw chunks deleted with their folders (the shared month folders stay).
    assert [p.relative_to(tmp_path / "storage") for p in (tmp_path / "storage" / "raw").rglob("*")] == [
        Path("raw", f"{rec.started_at:%Y}"), Path("raw", f"{rec.started_at:%Y}", f"{rec.started_at:%m}")]


def test_the_command_line_lists_jobs_and_refuses_unknown_attempts(tmp_path):
    env = dict(os.environ, PROCTOR_DATA_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", "from proctor_app.db import migrate; migrate()"], env=env,
                   cwd=ROOT, check=True)
    missing = subprocess.run([sys.executable, "-m", "proctor_app", "reprocess", "12345"], env=env,
                             cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "no such attempt" in missing.stderr
    listing = subprocess.run([sys.executable, "-m", "proctor_app", "jobs"], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
    assert listing.stdout.split() == ["id", "kind", "attempt", "status", "progress", "tries", "last", "error"]


# ---------------------------------------------------------------------------------------------
# Submitting: the job is queued with the end (submits while processing runs: tests/browser/)


def test_ending_an_attempt_queues_its_finalize_job_in_the_same_transaction():
    candidate_id, (submitted, timed_out, failed) = open_attempts(3)
    timed_submit(candidate_id, submitted)
    with session_scope() as db:
        attempt = db.exec(select(Attempt).where(Attempt.exam_id == timed_out)).one()
        attempt.deadline_at = utcnow() - timedelta(minutes=5)
        db.add(attempt)
    with session_scope() as db:
        assert attempts.close_overdue_attempts(db) >= 1
    with pytest.raises(RuntimeError):
        with session_scope() as db:
            attempts.submit(db, attempts.attempt_for(db, failed, candidate_id))
            raise RuntimeError("the request fails after submitting")
    with session_scope() as db:
        by_exam = {a.exam_id: a for a in db.exec(select(Attempt).where(Attempt.candidate_id == candidate_id))}
        queued = {j.attempt_id: j for j in db.exec(select(Job).where(Job.kind == processing.FINALIZE, Job.attempt_id.in_(
            [a.id for a in by_exam.values()])))}
    assert by_exam[timed_out].status == AttemptStatus.expired
    assert set(queued) == {by_exam[submitted].id, by_exam[timed_out].id}
    assert by_exam[failed].status == AttemptStatus.in_progress  # rolled back, and so was its job


def test_a_worker_stops_when_cancelled_just_as_it_is_woken():
    # A job ending wakes the loop; a stop arriving in the same instant must still end the worker
    # (Python 3.11's wait_for dropped such a cancel, and the worker ran on after the stop).
    async def stop_at(ticks: int) -> None:
        worker = Worker(handlers={_kind(): Handler(lambda ctx: asyncio.sleep(0))}, poll_s=60)
        task = asyncio.create_task(worker.run())
        while worker.round_at is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # asleep on its wake-up event
        worker._wake.set()
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, f"the worker ran on after a stop {ticks} ticks after its wake-up"

    for ticks in range(4):
        asyncio.run(stop_at(ticks))
