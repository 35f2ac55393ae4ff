"""Submits stay fast while the server's worker processes a recording (against the running app)."""

import statistics
import time
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import Job, JobStatus, Recording, RecordingStatus, utcnow
from proctor_app.services import processing
from tests.support import samples
from tests.support.polling import wait_for
from tests.support.submitting import open_attempts, timed_submit

pytestmark = pytest.mark.usefixtures("demo_db")


def _job_status(job_id: int) -> str:
    with session_scope() as db:
        return db.get(Job, job_id).status


@pytest.mark.browser
def test_submit_latency_is_the_same_while_the_server_processes_a_recording(app_server, tmp_path):
    candidate_id, exam_ids = open_attempts(30)
    # A recording that keeps the server's worker busy for a while (VP8: re-encoded).
    seconds = 90
    started = utcnow() - timedelta(seconds=seconds + 5)
    sample = samples.start_attempt(started)
    data = samples.encode(tmp_path / "rec.webm", seconds, "vp8", clip_s=10).read_bytes()
    samples.upload_segment(sample, "camera", 0, samples.evenly(samples.cut(data, seconds), started, seconds),
                           samples.MIME["vp8"])
    samples.end_attempt(sample, started + timedelta(seconds=seconds))

    def measure(exams: list[int]) -> tuple[float, float]:
        submits = [timed_submit(candidate_id, exam_id) for exam_id in exams]
        pings = []
        for _ in range(15):
            t = time.perf_counter()
            assert httpx.get(f"{app_server.url}/api/time", timeout=10).status_code == 200
            pings.append(time.perf_counter() - t)
        return statistics.median(submits), statistics.median(pings)

    idle_submit, idle_ping = measure(exam_ids[:15])
    with session_scope() as db:
        job_id = processing.enqueue_finalize(db, sample.attempt_id).id

    def recording() -> Recording:
        with session_scope() as db:
            return db.exec(select(Recording).where(Recording.attempt_id == sample.attempt_id)).one()

    wait_for(lambda: recording().progress > 0.02, 60, "the server's worker to start processing")
    busy_submit, busy_ping = measure(exam_ids[15:])
    assert recording().status == RecordingStatus.processing, "processing ended before the measurement"
    assert busy_submit <= 3 * idle_submit + 0.05, (idle_submit, busy_submit)
    assert busy_ping <= 3 * idle_ping + 0.05, (idle_ping, busy_ping)
    wait_for(lambda: _job_status(job_id) == JobStatus.done, 240, "processing to finish")
    assert recording().status == RecordingStatus.completed
