"""Recordings with their HLS ladder for tests: H.264 recordings uploaded as the browser does,
then the attempt's finalize and HLS jobs' handlers run here, in order, as a worker runs them.
Tests that run handlers here hold the jobs they queue (`jobs_held_here`): the session's app
server runs a worker on the same database, and two runs of one job share its work folder."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.jobs import queue
from proctor_app.media.jobs.worker import JobContext
from proctor_app.models import Job, JobStatus, utcnow
from proctor_app.services import processing
from proctor_app.services.settings import settings_cache
from tests.support import samples

FPS = 15
# Far enough ahead that no worker takes a held job while a test runs.
HELD_S = 24 * 3600


@pytest.fixture
def jobs_held_here(monkeypatch):
    """Jobs that processing queues during the test are due only in HELD_S: run here, never by a worker."""
    def held(*args, **kwargs):
        return queue.enqueue(*args, **(kwargs | {"delay_s": HELD_S}))
    monkeypatch.setattr(processing, "enqueue", held)


def run_here(coroutine):
    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def recorded_attempt(folder: Path, sizes: dict[str, tuple[int, int]], seconds: float,
                     keyframe_s: float = 2.0) -> int:
    """An ended attempt with an H.264 recording per stream at its size, uploaded as the browser does."""
    started = utcnow() - timedelta(seconds=seconds + 10)
    sample = samples.start_attempt(started, screen="screen" in sizes)
    for stream, size in sizes.items():
        data = samples.encode(folder / f"{stream}.mkv", seconds, "h264", size=size, fps=FPS,
                              keyframe_s=keyframe_s).read_bytes()
        samples.upload_segment(sample, stream, 0, samples.evenly(samples.cut(data, seconds), started, seconds),
                               samples.MIME["h264"])
    samples.end_attempt(sample, started + timedelta(seconds=seconds))
    return sample.attempt_id


def job_context(attempt_id: int, kind: str, payload: dict | None = None) -> JobContext:
    return JobContext(id=0, kind=kind, attempt_id=attempt_id, payload=payload or {}, tries=1, max_tries=3)


def finish_jobs(attempt_id: int, *kinds: str) -> None:
    """What the worker would have written after running the attempt's jobs (of `kinds`) here."""
    with session_scope() as db:
        for job in db.exec(select(Job).where(Job.attempt_id == attempt_id,
                                             Job.kind.in_(kinds or (processing.FINALIZE, processing.HLS)))):
            job.status = JobStatus.done
            db.add(job)


def finalize_here(attempt_id: int, force: bool = False) -> None:
    run_here(processing.finalize_handler(settings_cache).run(
        job_context(attempt_id, processing.FINALIZE, {"force": True} if force else {})))


def ladder_here(attempt_id: int) -> None:
    run_here(processing.run_hls(job_context(attempt_id, processing.HLS)))


def processed(attempt_id: int) -> None:
    """The attempt's MP4s, then their ladders; both jobs done."""
    finalize_here(attempt_id)
    ladder_here(attempt_id)
    finish_jobs(attempt_id)
