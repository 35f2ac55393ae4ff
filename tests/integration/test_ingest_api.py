"""The upload routes against the running app: chunks, snapshots and events, every refusal, and
what ends up on disk and in the database (or, for a refusal, does not)."""

import contextlib
import dataclasses
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import event, update
from sqlmodel import Session, select

from proctor_app.auth.tokens import new_token, token_hash
from proctor_app.db import engine_for, session_scope
from proctor_app.media.ingest import checks, errors, events, window
from proctor_app.media.ingest.rows import UploadTargets
from proctor_app.media.ingest.tokens import REFRESH_AFTER_S, REVALIDATE_AFTER_S, TokenScopes
from proctor_app.media.storage import local, storage
from proctor_app.models import (
    Attempt,
    Chunk,
    ProctoringEvent,
    Recording,
    RecordingStatus,
    Segment,
    Snapshot,
    UploadToken,
    utcnow,
)
from proctor_app.runtime import upload_store
from proctor_app.services import attempts, uploads
from tests.support.clock import FakeClock
from tests.support.polling import wait_for
from tests.support.uploads import MIME, chunk_headers, chunk_url, new_attempt, recording

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg body" * 50


def put_chunk(client, grant, seq, body, segment=0, stream="camera", token="grant", **headers):
    token = grant.token if token == "grant" else token
    return client.put(chunk_url(grant.attempt_id, seq, segment, stream), content=body,
                      headers=chunk_headers(body, token, seq, **headers))


def stored_chunks(attempt_id: int, stream: str = "camera") -> list[tuple[int, int, str, str]]:
    with session_scope() as db:
        return db.exec(select(Segment.number, Chunk.seq, Chunk.sha256, Chunk.path)
                       .join(Segment, Segment.id == Chunk.segment_id)
                       .join(Recording, Recording.id == Segment.recording_id)
                       .where(Recording.attempt_id == attempt_id, Recording.stream == stream)
                       .order_by(Segment.number, Chunk.seq)).all()


def files_of(attempt_id: int) -> list[str]:
    """Every file uploads wrote for the attempt (temp files included): KIND/YYYY/MM/ATTEMPT/...
    (matched by that part: attempt 11 is not every file of November). Not processed/: the app
    server's job worker grows the attempt's MP4 there meanwhile."""
    return sorted(str(path) for path in (p.relative_to(storage.root()) for p in storage.root().rglob("*")
                                         if p.is_file())
                  if path.parts[3:4] == (str(attempt_id),) and path.parts[0] != "processed")


def test_chunks_are_stored_byte_identical_in_order_and_idempotently(client, grant):
    bodies = {seq: f"chunk {seq} ".encode() * (1000 + seq) for seq in range(4)}
    # Out of order: the answer always says up to where the server holds everything.
    for count, (seq, contiguous) in enumerate([(0, 0), (2, 0), (3, 0), (1, 3)], start=1):
        answer = put_chunk(client, grant, seq, bodies[seq])
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"status": "stored", "stream": "camera", "segment": 0, "seq": seq,
                                 "contiguous_seq": contiguous, "chunk_count": count}
    again = put_chunk(client, grant, 2, bodies[2])
    assert again.status_code == 200
    assert again.json()["status"] == "already_stored" and again.json()["contiguous_seq"] == 3

    rows = stored_chunks(grant.attempt_id)
    assert [(segment, seq) for segment, seq, _, _ in rows] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    with session_scope() as db:
        started = db.get(Attempt, grant.attempt_id).started_at
    for _, seq, sha, path in rows:
        data = storage.absolute(path).read_bytes()
        assert data == bodies[seq] and hashlib.sha256(data).hexdigest() == sha
        assert path == f"raw/{started:%Y/%m}/{grant.attempt_id}/camera/0/{seq:08d}"
    assert files_of(grant.attempt_id) == sorted(path for *_, path in rows)

    row = recording(grant.attempt_id)
    assert (row.status, row.chunk_count, row.gap_count, row.mime_type) == (
        RecordingStatus.in_progress, 4, 0, MIME)
    assert row.byte_count == sum(len(b) for b in bodies.values())
    with session_scope() as db:
        segment = db.exec(select(Segment).where(Segment.recording_id == row.id)).one()
        first = db.exec(select(Chunk).where(Chunk.segment_id == segment.id, Chunk.seq == 0)).one()
    assert segment.contiguous_seq == 3 and segment.started_at == first.start_time
    assert first.meta == {"questions_viewed": [7], "questions_answered": []}


def test_a_different_body_for_a_stored_seq_is_a_conflict_and_changes_nothing(client, grant):
    assert put_chunk(client, grant, 0, b"original bytes").status_code == 201
    answer = put_chunk(client, grant, 0, b"other bytes")
    assert answer.status_code == 409 and answer.json()["error"] == "chunk_conflict"
    (_, _, sha, path), = stored_chunks(grant.attempt_id)
    assert storage.absolute(path).read_bytes() == b"original bytes"
    assert recording(grant.attempt_id).chunk_count == 1


def test_gaps_are_counted_until_filled(client, grant):
    for seq in (0, 3, 5):
        put_chunk(client, grant, seq, b"x%d" % seq)
    assert recording(grant.attempt_id).gap_count == 3  # 1, 2 and 4 missing
    put_chunk(client, grant, 1, b"x1")
    put_chunk(client, grant, 2, b"x2")
    answer = put_chunk(client, grant, 4, b"x4")
    assert answer.json()["contiguous_seq"] == 5
    assert recording(grant.attempt_id).gap_count == 0
    # A new segment (a reload) starts its own numbering.
    assert put_chunk(client, grant, 0, b"y0", segment=1).json()["contiguous_seq"] == 0


def test_racing_uploads_of_one_seq_store_one_body_that_matches_its_row(client, grant):
    results = []

    def upload(body):
        with httpx.Client(base_url=client.base_url, timeout=30) as own:
            results.append(put_chunk(own, grant, 0, body).status_code)

    threads = [threading.Thread(target=upload, args=(body,))
               for body in [b"A" * 50_000, b"A" * 50_000, b"B" * 50_000, b"B" * 50_000]]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results).count(201) == 1 and set(results) <= {200, 201, 409}
    (_, _, sha, path), = stored_chunks(grant.attempt_id)
    assert hashlib.sha256(storage.absolute(path).read_bytes()).hexdigest() == sha
    assert recording(grant.attempt_id).chunk_count == 1


@pytest.mark.parametrize("authorization, code", [
    (None, "token_missing"),
    ("Basic dXNlcjpwYXNz", "token_missing"),
    ("Bearer not-a-real-token", "token_unknown"),
])
def test_missing_or_unknown_tokens_are_refused(client, grant, authorization, code):
    body = b"data"
    headers = chunk_headers(body, None)
    if authorization:
        headers["Authorization"] = authorization
    answer = client.put(chunk_url(grant.attempt_id, 0), content=body, headers=headers)
    assert (answer.status_code, answer.json()["error"]) == (401, code)
    assert stored_chunks(grant.attempt_id) == [] and files_of(grant.attempt_id) == []


def test_expired_foreign_and_out_of_scope_tokens_are_refused(client, grant):
    with session_scope() as db:
        other = uploads.issue_upload_token(db, new_attempt(db))
        expired = new_token()
        db.add(UploadToken(attempt_id=grant.attempt_id, token_hash=token_hash(expired), streams=["camera"],
                           expires_at=utcnow() - timedelta(seconds=1)))
    answer = put_chunk(client, grant, 0, b"data", token=expired)
    assert (answer.status_code, answer.json()["error"]) == (401, "token_expired")
    answer = put_chunk(client, grant, 0, b"data", token=other.token)
    assert (answer.status_code, answer.json()["error"]) == (403, "token_foreign")
    # The exam records the camera only.
    answer = put_chunk(client, grant, 0, b"data", stream="screen")
    assert (answer.status_code, answer.json()["error"]) == (403, "stream_not_allowed")
    assert stored_chunks(grant.attempt_id) == [] and files_of(grant.attempt_id) == []
    assert files_of(other.attempt_id) == []


def test_no_token_for_exams_that_capture_nothing_or_attempts_not_started(app_server):
    with session_scope() as db:
        assert uploads.issue_upload_token(db, new_attempt(db, recording=False, snapshots=False)) is None
        assert uploads.issue_upload_token(db, new_attempt(db, start=False)) is None
        both = uploads.issue_upload_token(db, new_attempt(db, screen=True))
    assert both.streams == ["camera", "screen"] and both.next_segment == {"camera": 0, "screen": 0}


@pytest.mark.parametrize("live", [True, False], ids=["live-only", "recording-off"])
def test_without_recording_a_token_uploads_snapshots_and_events_but_no_video(client, app_server, live):
    with session_scope() as db:
        grant = uploads.issue_upload_token(db, new_attempt(db, recording=False, live=live))
        assert db.exec(select(Recording).where(Recording.attempt_id == grant.attempt_id)).all() == []
    assert grant.streams == [] and grant.next_segment == {} and grant.snapshot_interval_s == 60
    answer = put_chunk(client, grant, 0, b"data")
    assert (answer.status_code, answer.json()["error"]) == (403, "stream_not_allowed")
    assert files_of(grant.attempt_id) == []
    answer = client.put(f"/api/attempts/{grant.attempt_id}/snapshots/0", content=JPEG, headers={
        "Authorization": f"Bearer {grant.token}", "X-Content-SHA256": hashlib.sha256(JPEG).hexdigest(),
        "X-Taken-Ms": str(int(time.time() * 1000))})
    assert answer.status_code == 201
    answer = client.post(f"/api/attempts/{grant.attempt_id}/events", headers={
        "Authorization": f"Bearer {grant.token}"}, json={"events": [
            {"id": "e1", "kind": "tab_hidden", "at": int(time.time() * 1000)},
            {"id": "e2", "kind": "window_blur", "at": int(time.time() * 1000)}]})
    assert answer.json() == {"stored": 2, "duplicates": 0}
    assert len(files_of(grant.attempt_id)) == 1


def test_a_new_token_continues_after_what_the_server_holds(client, grant):
    put_chunk(client, grant, 0, b"a", segment=0)
    put_chunk(client, grant, 0, b"b", segment=2)
    assert client.put(f"/api/attempts/{grant.attempt_id}/snapshots/4", content=JPEG, headers={
        "Authorization": f"Bearer {grant.token}", "X-Content-SHA256": hashlib.sha256(JPEG).hexdigest(),
        "X-Taken-Ms": str(int(time.time() * 1000))}).status_code == 201
    with session_scope() as db:
        again = uploads.issue_upload_token(db, db.get(Attempt, grant.attempt_id))
    assert again.token != grant.token
    assert again.next_segment == {"camera": 3} and again.next_snapshot_seq == 5


def test_attempts_past_their_upload_window_or_finalized_recordings_refuse_chunks(client, grant):
    with session_scope() as db:
        attempt = db.get(Attempt, grant.attempt_id)
        attempts.submit(db, attempt)
    # Just submitted: the browser may still flush.
    assert put_chunk(client, grant, 0, b"late but welcome").status_code == 201
    with session_scope() as db:
        row = db.exec(select(Recording).where(Recording.attempt_id == grant.attempt_id)).one()
        row.status = RecordingStatus.processing
        db.add(row)
    answer = put_chunk(client, grant, 1, b"after processing began")
    assert (answer.status_code, answer.json()["error"]) == (409, "recording_finalized")
    with session_scope() as db:
        row = db.exec(select(Recording).where(Recording.attempt_id == grant.attempt_id)).one()
        row.status = RecordingStatus.in_progress
        attempt = db.get(Attempt, grant.attempt_id)
        attempt.ended_at = utcnow() - window.FLUSH_GRACE - timedelta(seconds=1)
        db.add_all([row, attempt])
    answer = put_chunk(client, grant, 1, b"far too late")
    assert (answer.status_code, answer.json()["error"]) == (409, "attempt_closed")
    assert [seq for _, seq, _, _ in stored_chunks(grant.attempt_id)] == [0]
    assert len(files_of(grant.attempt_id)) == 1


def test_bodies_over_the_limit_are_refused_before_anything_is_stored(client, grant):
    limit = 20 * 1024 * 1024  # the default max_chunk_mb
    answer = put_chunk(client, grant, 0, b"\0" * (limit + 1))
    assert (answer.status_code, answer.json()["error"]) == (413, "too_large")
    assert put_chunk(client, grant, 0, b"").json()["error"] == "empty_body"
    assert stored_chunks(grant.attempt_id) == [] and files_of(grant.attempt_id) == []


@pytest.mark.parametrize("headers, code", [
    ({"X-Content-SHA256": hashlib.sha256(b"something else").hexdigest()}, "sha256_mismatch"),
    ({"X-Content-SHA256": "abc"}, "bad_sha256"),
    ({"X-Content-SHA256": None}, "bad_sha256"),
    ({"Content-Type": "text/html"}, "bad_mime_type"),
    ({"X-Chunk-Start-Ms": None}, "bad_start_ms"),
    ({"X-Chunk-End-Ms": "1"}, "bad_end_ms"),
    ({"X-Chunk-End-Ms": "0", "X-Chunk-Start-Ms": "0"}, "bad_start_ms"),
    ({"X-Chunk-Meta": "{not json"}, "bad_meta"),
    ({"X-Chunk-Meta": json.dumps({"questions_viewed": ["1; drop table"]})}, "bad_meta"),
])
def test_invalid_chunk_headers_are_refused_with_their_reason(client, grant, headers, code):
    answer = put_chunk(client, grant, 0, b"chunk body", **headers)
    assert (answer.status_code, answer.json()["error"]) == (400, code)
    assert stored_chunks(grant.attempt_id) == [] and files_of(grant.attempt_id) == []


@pytest.mark.parametrize("stream, segment, seq, code", [
    ("camera", "0", str(checks.MAX_SEQ + 1), "bad_seq"),
    ("camera", str(checks.MAX_SEGMENT + 1), "0", "bad_segment"),
    ("camera", "-1", "0", "bad_segment"),
    ("camera", "0", "1e3", "bad_seq"),
    ("camera", "0", "٣", "bad_seq"),  # a digit, but not an ASCII one
    ("microphone", "0", "0", "stream_not_allowed"),
    ("Camera", "0", "0", "stream_not_allowed"),
])
def test_out_of_range_numbers_and_unknown_streams_are_refused(client, grant, stream, segment, seq, code):
    body = b"chunk body"
    answer = client.put(f"/api/attempts/{grant.attempt_id}/streams/{stream}/segments/{segment}/chunks/{seq}",
                        content=body, headers=chunk_headers(body, grant.token))
    assert answer.json()["error"] == code and answer.status_code in (400, 403)
    assert stored_chunks(grant.attempt_id) == [] and files_of(grant.attempt_id) == []


@pytest.mark.parametrize("path", [
    "/api/attempts/{a}/streams/..%2F..%2F..%2Ftmp/segments/0/chunks/0",
    "/api/attempts/{a}/streams/camera/segments/..%2F..%2F..%2F..%2Fescape/chunks/0",
    "/api/attempts/{a}/streams/camera/segments/0/chunks/..%2F..%2F..%2Fescape",
    "/api/attempts/..%2F{a}/streams/camera/segments/0/chunks/0",
    "/api/attempts/{a}/streams/camera/segments/0/chunks/%2e%2e",
    "/api/attempts/{a}/streams/%2E%2E/segments/0/chunks/0",
])
def test_path_traversal_attempts_write_nothing(client, grant, path):
    def data_files() -> list[Path]:
        # Not processed/: the app server's job worker writes there for other tests' attempts meanwhile.
        return sorted(p for p in storage.root().parent.rglob("*") if storage.root() / "processed" not in p.parents)

    before = data_files()
    body = b"chunk body"
    answer = client.put(path.format(a=grant.attempt_id), content=body, headers=chunk_headers(body, grant.token))
    assert 400 <= answer.status_code < 500
    assert data_files() == before


def test_snapshots_are_stored_once_and_must_be_jpeg(client, grant):
    def put(seq, body, sha=None):
        return client.put(f"/api/attempts/{grant.attempt_id}/snapshots/{seq}", content=body, headers={
            "Authorization": f"Bearer {grant.token}", "Content-Type": "image/jpeg",
            "X-Content-SHA256": sha or hashlib.sha256(body).hexdigest(), "X-Taken-Ms": str(int(time.time() * 1000))})

    assert put(0, JPEG).status_code == 201
    assert put(0, JPEG).json()["status"] == "already_stored"
    assert put(0, JPEG + b"x").status_code == 409
    assert put(1, b"<html>not a picture</html>").json()["error"] == "not_jpeg"
    assert put(1, JPEG, sha="0" * 64).json()["error"] == "sha256_mismatch"
    with session_scope() as db:
        snapshot, = db.exec(select(Snapshot).where(Snapshot.attempt_id == grant.attempt_id)).all()
    assert storage.absolute(snapshot.path).read_bytes() == JPEG and snapshot.seq == 0
    assert client.put(f"/api/attempts/{grant.attempt_id}/snapshots/2", content=JPEG).status_code == 401


def events_of(attempt_id: int) -> list[ProctoringEvent]:
    with session_scope() as db:
        return db.exec(select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt_id,
                                                     ProctoringEvent.client_id.is_not(None))
                       .order_by(ProctoringEvent.id)).all()


def post_events(client, grant, events, token="grant"):
    token = grant.token if token == "grant" else token
    return client.post(f"/api/attempts/{grant.attempt_id}/events", json={"events": events},
                       headers={"Authorization": f"Bearer {token}"})


def test_browser_events_are_stamped_by_the_server_and_stored_once(client, grant):
    now_ms = int(time.time() * 1000)
    batch = [{"id": "e-1", "kind": "tab_hidden", "at": now_ms - 5000, "data": {}},
             {"id": "e-2", "kind": "camera_lost", "at": now_ms - 4000, "data": {"stream": "camera"}},
             {"id": "e-3", "kind": "online", "data": {}}]
    before = utcnow()
    assert post_events(client, grant, batch).json() == {"stored": 3, "duplicates": 0}
    # The answer was lost: the browser sends the same batch again.
    assert post_events(client, grant, batch).json() == {"stored": 0, "duplicates": 3}
    stored = events_of(grant.attempt_id)
    assert [(e.kind, e.severity) for e in stored] == [("tab_hidden", "warning"), ("camera_lost", "critical"),
                                                      ("online", "info")]
    assert all(e.server_time >= before for e in stored)
    assert stored[0].client_time.timestamp() == pytest.approx((now_ms - 5000) / 1000, abs=0.002)
    assert stored[2].client_time is None


@pytest.mark.parametrize("events, code", [
    ([{"id": "x", "kind": "submitted", "data": {}}], "bad_event_kind"),
    ([{"id": "bad id!", "kind": "tab_hidden"}], "bad_event"),
    ([{"id": "x", "kind": "tab_hidden", "data": {"blob": "x" * 5000}}], "bad_event"),
    ([{"id": f"e{i}", "kind": "tab_hidden"} for i in range(events.MAX_EVENTS_PER_BATCH + 1)], "bad_batch"),
    ("not a list", "bad_batch"),
])
def test_bad_event_batches_are_refused_whole(client, grant, events, code):
    good = {"id": "fine", "kind": "tab_visible", "data": {}}
    payload = [good, *events] if isinstance(events, list) and len(events) < 10 else events
    answer = post_events(client, grant, payload)
    assert (answer.status_code, answer.json()["error"]) == (400, code)
    assert events_of(grant.attempt_id) == []


def test_event_routes_check_the_token_and_the_body(client, grant):
    assert post_events(client, grant, [], token="wrong").status_code == 401
    answer = client.post(f"/api/attempts/{grant.attempt_id}/events", content=b"{not json",
                         headers={"Authorization": f"Bearer {grant.token}"})
    assert answer.json()["error"] == "bad_batch"


def test_a_reported_failure_marks_a_recording_without_chunks_failed(client, grant):
    event = {"id": "f-1", "kind": "recording_failed",
             "data": {"stream": "camera", "reason": "NotAllowedError: Permission denied"}}
    post_events(client, grant, [event])
    row = recording(grant.attempt_id)
    assert (row.status, row.failure_reason) == (RecordingStatus.failed, "NotAllowedError: Permission denied")
    # Retry worked after all: chunks arrive and the recording is in progress again.
    put_chunk(client, grant, 0, b"data")
    assert recording(grant.attempt_id).status == RecordingStatus.in_progress
    post_events(client, grant, [{**event, "id": "f-2"}])
    assert recording(grant.attempt_id).status == RecordingStatus.in_progress
    # A stream the exam does not record gets no recording row from a report.
    post_events(client, grant, [{**event, "id": "f-3", "data": {"stream": "screen", "reason": "x"}}])
    with session_scope() as db:
        assert db.exec(select(Recording.stream).where(Recording.attempt_id == grant.attempt_id)).all() == ["camera"]


def test_uploads_settle_after_the_flush_report_or_the_grace(grant, app_server):
    with session_scope() as db:
        attempt = db.get(Attempt, grant.attempt_id)
        assert not uploads.uploads_settled(db, attempt)
        attempts.submit(db, attempt)
        assert not uploads.uploads_settled(db, attempt)
    upload_store.record_browser_events(grant.token, grant.attempt_id,
                                 [{"id": "done", "kind": "uploads_flushed", "data": {}}])
    with session_scope() as db:
        attempt = db.get(Attempt, grant.attempt_id)
        assert uploads.uploads_settled(db, attempt)
        assert uploads.uploads_settled(db, new_attempt(db), utcnow()) is False


def ingest_processes(app_server) -> list[psutil.Process]:
    processes = []
    for p in psutil.Process(app_server.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            if p.status() != psutil.STATUS_ZOMBIE and "proctor_app.runtime" in " ".join(p.cmdline()):
                processes.append(p)
    return processes


def test_a_killed_ingest_process_loses_no_acknowledged_chunk_and_is_replaced(app_server, grant):
    """Uploads go on while an ingest process is SIGKILLed: every chunk is stored in the end, the
    ones it held are answered 503 and sent again (as the browser does), and a new process starts."""
    before = ingest_processes(app_server)
    assert before, "chunks are stored in ingest processes of their own by default"
    bodies = {(segment, seq): uuid.uuid4().bytes * 8000 for segment in range(4) for seq in range(12)}
    answers: list[int] = []
    halfway = threading.Barrier(5)  # the 4 uploaders and the test, so half the chunks come after

    def upload_segment(segment: int) -> None:
        with httpx.Client(base_url=app_server.url, timeout=30) as http:
            for seq in range(12):
                if seq == 6:
                    halfway.wait(30)
                for _ in range(20):
                    status = put_chunk(http, grant, seq, bodies[segment, seq], segment=segment).status_code
                    answers.append(status)
                    if status in (200, 201):
                        break
                    assert status == 503
                    time.sleep(0.1)

    uploaders = [threading.Thread(target=upload_segment, args=(segment,)) for segment in range(4)]
    [t.start() for t in uploaders]
    wait_for(lambda: halfway.n_waiting == 4, 30, "the first half of the chunks")
    # An attempt's chunks all go to one process: the one that has been working. It is killed as
    # the second half of the chunks set off.
    storing = max(before, key=lambda p: sum(p.cpu_times()[:2]))
    halfway.wait(30)
    storing.kill()
    [t.join() for t in uploaders]
    stored = {(segment, seq): sha for segment, seq, sha, _ in stored_chunks(grant.attempt_id)}
    assert stored == {key: hashlib.sha256(body).hexdigest() for key, body in bodies.items()}
    for segment, seq, sha, path in stored_chunks(grant.attempt_id):
        assert hashlib.sha256(storage.absolute(path).read_bytes()).hexdigest() == sha
    # Replaced in the background while the others go on storing, and also when no upload comes.
    for killed in (storing, None):
        if killed is None:
            [killed] = [p for p in ingest_processes(app_server) if p.pid not in {b.pid for b in before}]
            killed.kill()
        wait_for(lambda: len(ingest_processes(app_server)) == len(before)
                 and killed.pid not in {p.pid for p in ingest_processes(app_server)}, 20, "a new ingest process")


def test_an_ingest_process_whose_app_stopped_as_it_started_ends_quietly():
    app_side, process_side = socket.socketpair()
    app_side.close()
    with process_side:
        ended = subprocess.run([sys.executable, "-m", "proctor_app.runtime", "ingest", str(process_side.fileno())],
                               pass_fds=(process_side.fileno(),), capture_output=True, timeout=60)
    assert (ended.returncode, ended.stderr) == (0, b"")


def test_chunks_committed_together_refuse_only_the_one_whose_recording_was_taken_for_processing(
        app_server, monkeypatch):
    """Chunks arriving together are committed in one transaction; one whose recording processing
    took meanwhile (after its checks passed) is refused alone, and its file removed. The
    recording's next chunk is refused before anything is written."""
    with session_scope() as db:
        grants = [uploads.issue_upload_token(db, new_attempt(db)) for _ in range(6)]
    now_ms = int(time.time() * 1000)

    def upload(grant, seq):
        body = b"together %d %d" % (grant.attempt_id, seq)
        return upload_store.store_chunk(grant.token, checks.ChunkUpload(
            grant.attempt_id, "camera", 0, seq, body, hashlib.sha256(body).hexdigest(),
            str(now_ms), str(now_ms + 3000), MIME, None))

    for grant in grants:  # checks pass and are remembered for a moment
        upload(grant, 0)
    late = grants[0]
    with session_scope() as db:
        row = db.exec(select(Recording).where(Recording.attempt_id == late.attempt_id)).one()
        row.status = RecordingStatus.processing
        db.add(row)
    results = {}

    def upload_and_keep(grant):
        try:
            results[grant.attempt_id] = upload(grant, 1).status
        except errors.IngestError as exc:
            results[grant.attempt_id] = exc.code

    threads = [threading.Thread(target=upload_and_keep, args=(grant,)) for grant in grants]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == {g.attempt_id: "recording_finalized" if g is late else "stored" for g in grants}
    [(_, _, _, first)] = stored_chunks(late.attempt_id)
    assert [p.name for p in storage.absolute(first).parent.iterdir()] == ["00000000"]  # nor temp files
    with session_scope() as db:
        assert db.exec(select(Recording).where(Recording.attempt_id == late.attempt_id)).one().chunk_count == 1
    written = []
    monkeypatch.setattr(storage, "write_durably", lambda relative, body: written.append(relative))
    with pytest.raises(errors.IngestError) as refused:
        upload(late, 2)
    assert (refused.value.code, written) == ("recording_finalized", [])


@pytest.fixture
def pg_ingest(monkeypatch, tmp_path, pg_url):
    """store_chunk and friends running against PostgreSQL, in a schema of this test's own, storing
    into a folder of its own (its attempt ids would collide with the SQLite database's)."""
    import proctor_app.db


    engine = engine_for(pg_url)
    monkeypatch.setattr(local, "config", dataclasses.replace(local.config, storage_dir=tmp_path))
    monkeypatch.setattr(proctor_app.db, "get_engine", lambda: engine)
    monkeypatch.setattr(upload_store, "tokens", TokenScopes())
    monkeypatch.setattr(upload_store, "targets", UploadTargets())
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ingest_database(request):
    """store_chunk on the test server's SQLite database, or on PostgreSQL."""
    return request.getfixturevalue("app_server" if request.param == "sqlite" else "pg_ingest")


def test_segments_started_together_each_get_their_own_chunks(ingest_database):
    """First chunks of many segments committed together: each chunk row under its own segment
    (their segments are inserted in one statement)."""
    with session_scope() as db:
        grants = [uploads.issue_upload_token(db, new_attempt(db)) for _ in range(8)]
    now_ms = int(time.time() * 1000)
    start = threading.Barrier(len(grants))

    def first_chunks(grant):
        start.wait()
        for segment in range(4):
            body = b"segment %d of attempt %d" % (segment, grant.attempt_id)
            ack = upload_store.store_chunk(grant.token, checks.ChunkUpload(
                grant.attempt_id, "camera", segment, 0, body, hashlib.sha256(body).hexdigest(),
                str(now_ms), str(now_ms + 3000), MIME, None))
            assert (ack.status, ack.segment, ack.contiguous_seq, ack.chunk_count) == ("stored", segment, 0, 1)

    with ThreadPoolExecutor(len(grants)) as uploaders:
        list(uploaders.map(first_chunks, grants))
    for grant in grants:
        rows = stored_chunks(grant.attempt_id)
        assert [(number, seq) for number, seq, _, _ in rows] == [(0, 0), (1, 0), (2, 0), (3, 0)]
        for number, _, sha256, path in rows:
            body = storage.absolute(path).read_bytes()
            assert body == b"segment %d of attempt %d" % (number, grant.attempt_id)
            assert hashlib.sha256(body).hexdigest() == sha256


@pytest.mark.postgres
def test_ingest_on_postgres_counts_orders_and_refuses_conflicts(pg_ingest):
    with session_scope() as db:
        attempt = new_attempt(db)
        grant = uploads.issue_upload_token(db, attempt)
    now_ms = int(time.time() * 1000)

    def upload(seq, body, segment=0):
        return upload_store.store_chunk(grant.token, checks.ChunkUpload(
            grant.attempt_id, "camera", segment, seq, body, hashlib.sha256(body).hexdigest(),
            str(now_ms + seq), str(now_ms + seq + 1), MIME, None))

    acks = [upload(seq, b"pg%d" % seq) for seq in (2, 0, 1, 1)]
    assert [(a.status, a.contiguous_seq) for a in acks] == [
        ("stored", -1), ("stored", 0), ("stored", 2), ("already_stored", 2)]
    with pytest.raises(errors.IngestError) as refused:
        upload(1, b"different")
    assert refused.value.status == 409
    threads = [threading.Thread(target=upload, args=(3, b"same")) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with Session(pg_ingest) as db:
        row = db.exec(select(Recording).where(Recording.attempt_id == grant.attempt_id)).one()
        segment = db.exec(select(Segment).where(Segment.recording_id == row.id)).one()
    assert (row.chunk_count, row.gap_count, segment.contiguous_seq) == (4, 0, 3)
    assert segment.started_at.timestamp() == pytest.approx(now_ms / 1000, abs=0.002)
    result = upload_store.record_browser_events(grant.token, grant.attempt_id,
                                          [{"id": "pg-1", "kind": "tab_hidden", "at": now_ms}] * 2)
    assert result == {"stored": 1, "duplicates": 1}


def test_tokens_due_for_a_lookup_are_looked_up_together(ingest_database):
    """A token's lookup looks up again, in the same query, the cached tokens older than
    REFRESH_AFTER_S: one revoked in the database meanwhile by another process (no forget reached
    this cache) is refused from then on, before its own REVALIDATE_AFTER_S are over."""
    import proctor_app.db

    with session_scope() as db:
        grants = [uploads.issue_upload_token(db, new_attempt(db)) for _ in range(3)]
    clock = FakeClock()
    scopes = TokenScopes(clock)
    for grant in grants[:2]:
        scopes.authorize(grant.token, grant.attempt_id, "camera")
    with session_scope() as db:
        db.exec(update(UploadToken).where(UploadToken.token_hash == token_hash(grants[0].token))
                .values(revoked_at=utcnow()))
    clock.advance(REFRESH_AFTER_S + 0.5)
    assert scopes.authorize(grants[0].token, grants[0].attempt_id, "camera")  # still cached
    statements = []
    engine = proctor_app.db.get_engine()
    counting = lambda conn, cursor, statement, *_: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", counting)
    try:
        scopes.authorize(grants[2].token, grants[2].attempt_id, "camera")  # not cached yet
    finally:
        event.remove(engine, "before_cursor_execute", counting)
    assert sum("upload_tokens" in statement for statement in statements) == 1
    with pytest.raises(errors.IngestError) as refused:
        scopes.authorize(grants[0].token, grants[0].attempt_id, "camera")
    assert refused.value.code == "token_revoked"
    # The other token was looked up in that query too: fresh until REVALIDATE_AFTER_S after it.
    clock.advance(REVALIDATE_AFTER_S - 1)
    event.listen(engine, "before_cursor_execute", counting)
    try:
        assert scopes.authorize(grants[1].token, grants[1].attempt_id, "camera")
    finally:
        event.remove(engine, "before_cursor_execute", counting)
    assert sum("upload_tokens" in statement for statement in statements) == 1
