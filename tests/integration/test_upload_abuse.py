"""Upload abuse against the running app over real HTTP: the token is checked before a slot or a
byte of the body; slow bodies are answered 408; an attempt has a few uploads in flight at most
(503 + Retry-After); a stream's stored bytes and segments are bounded (413, 429); an attempt's
upload tokens are bounded.

Timing assertions compare figures measured in the same test, with generous absolute slack, so a
loaded 2-core machine does not fail them."""

import asyncio
import hashlib
import json
import socket
import statistics
import threading
import time
from datetime import timedelta
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlmodel import Session

from proctor_app.api import ingest as ingest_api
from proctor_app.db import session_scope
from proctor_app.media.ingest.checks import MAX_SEGMENTS_PER_STREAM
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.tokens import TokenScopes
from proctor_app.models import Attempt, Segment, UploadToken, utcnow
from proctor_app.runtime import upload_store
from proctor_app.services import uploads
from tests.support.uploads import chunk_headers, chunk_url, new_attempt, recording

CHUNK = 237_000


def _port(app_server) -> int:
    return urlparse(app_server.url).port


def _request_head(method: str, path: str, headers: dict, length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _parse_answer(data: bytes) -> tuple[int, dict, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    return int(lines[0].split()[1]), headers, answer


def _read_answer(sock: socket.socket, timeout: float) -> tuple[int, dict, dict]:
    """Status, headers and JSON of the answer on a raw socket (the body is small JSON)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    length = next((int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)
    while len(data.partition(b"\r\n\r\n")[2]) < length:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return _parse_answer(data)


class Trickler:
    """A raw connection that sends a request's head, then its body one byte a second (never all
    of it), and notes when the answer came."""

    def __init__(self, port: int, path: str, headers: dict, length: int = CHUNK, method: str = "PUT"):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(_request_head(method, path, headers, length) + b"x")
        self.started = time.monotonic()
        self.answer: tuple[int, dict, dict] | None = None
        self.answered_after: float | None = None
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._trickle, daemon=True)
        self._sender.start()

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.sock.sendall(b"x")
            except OSError:
                return

    def wait_answer(self, timeout: float) -> tuple[int, dict, dict]:
        self.answer = _read_answer(self.sock, timeout)
        self.answered_after = time.monotonic() - self.started
        return self.answer

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._sender.join(5)


def _upload(client, grant, seq: int, body: bytes, segment: int = 0) -> httpx.Response:
    return client.put(chunk_url(grant.attempt_id, seq, segment), content=body,
                      headers=chunk_headers(body, grant.token, seq))


def _timed_uploads(client, grant, seqs, body_of) -> list[float]:
    took = []
    for seq in seqs:
        started = time.perf_counter()
        answer = _upload(client, grant, seq, body_of(seq))
        took.append(time.perf_counter() - started)
        assert answer.status_code == 201, answer.text
    return took


async def _attack(port: int, paths: list[str], connections: int, stop: threading.Event,
                  answers: list[tuple[int, float]]) -> None:
    """`connections` clients without a token, each sending a request head and then a byte a second
    (the body announced as a whole chunk), reconnecting a second after each answer."""

    async def attacker(number: int) -> None:
        path = paths[number % len(paths)]
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(1)
                continue
            started = time.monotonic()
            try:
                writer.write(_request_head("PUT" if "events" not in path else "POST", path,
                                           {"Content-Type": "video/webm"}, CHUNK) + b"x")
                await writer.drain()
                while not stop.is_set():
                    try:
                        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
                    except TimeoutError:
                        writer.write(b"x")  # one more byte, a second later
                        await writer.drain()
                        continue
                    answers.append((int(head.split()[1]), time.monotonic() - started))
                    break
            except (OSError, asyncio.IncompleteReadError):
                answers.append((0, time.monotonic() - started))
            finally:
                writer.close()
            await asyncio.sleep(1)

    await asyncio.gather(*(attacker(n) for n in range(connections)))


def test_slow_senders_without_a_token_are_refused_before_their_bodies_and_slow_no_one(app_server, client, grant):
    body_of = lambda seq: hashlib.sha256(str(seq).encode()).digest() * (CHUNK // 32)
    _timed_uploads(client, grant, range(3), body_of)  # warm: token cached, connections open
    quiet = statistics.median(_timed_uploads(client, grant, range(3, 18), body_of))

    attempt_id = grant.attempt_id
    paths = [chunk_url(attempt_id, 1000 + n) for n in range(6)] + \
            [f"/api/attempts/{attempt_id}/snapshots/{n}" for n in range(2)] + [f"/api/attempts/{attempt_id}/events"]
    stop, answers = threading.Event(), []
    attack = threading.Thread(target=asyncio.run, args=(_attack(_port(app_server), paths, 80, stop, answers),),
                              daemon=True)
    attack.start()
    try:
        time.sleep(3)  # every attacker connected at least once, most twice
        under_attack = statistics.median(_timed_uploads(client, grant, range(18, 33), body_of))
    finally:
        stop.set()
        attack.join(30)
    assert not attack.is_alive()

    print(f"legitimate chunk median: quiet {quiet * 1000:.1f} ms, under attack {under_attack * 1000:.1f} ms; "
          f"{len(answers)} attacker answers, slowest after {max(took for _, took in answers):.2f} s")
    statuses = [status for status, _ in answers]
    assert len(answers) >= 80 and set(statuses) == {401}, statuses
    # Answered at once, before their bodies: a byte a second would take days.
    assert max(took for _, took in answers) < 5.0
    # The legitimate uploads went on as before (2x the quiet median, plus 50 ms for a busy machine).
    assert under_attack <= 2 * quiet + 0.05, (quiet, under_attack)
    assert recording(attempt_id).chunk_count == 33


@pytest.mark.parametrize("route", ["chunk", "snapshot", "events"])
@pytest.mark.parametrize("token, code", [(None, "token_missing"), ("not-a-real-token", "token_unknown")])
def test_every_upload_route_refuses_a_bad_token_before_reading_the_body(app_server, grant, route, token, code):
    path = {"chunk": chunk_url(grant.attempt_id, 0),
            "snapshot": f"/api/attempts/{grant.attempt_id}/snapshots/0",
            "events": f"/api/attempts/{grant.attempt_id}/events"}[route]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # 4 MiB announced, 1 byte sent: only an answer before the body can come within the timeout.
    trickler = Trickler(_port(app_server), path, headers, length=4 * 1024 * 1024,
                        method="POST" if route == "events" else "PUT")
    try:
        status, _, answer = trickler.wait_answer(timeout=10)
    finally:
        trickler.close()
    assert (status, answer["error"]) == (401, code)
    assert trickler.answered_after < 3.0


def test_a_token_holder_trickling_bodies_holds_the_attempts_few_slots_until_408(app_server, client, grant):
    # The token is cached first, so the tricklers are admitted at once.
    assert _upload(client, grant, 0, b"warm").status_code == 201
    auth = {"Authorization": f"Bearer {grant.token}", **chunk_headers(b"x", None)}
    auth.pop("X-Content-SHA256")
    tricklers = [Trickler(_port(app_server), chunk_url(grant.attempt_id, 100 + n), auth)
                 for n in range(ingest_api.MAX_IN_FLIGHT_PER_ATTEMPT)]
    try:
        time.sleep(1.0)
        # The attempt's slots are taken: its next upload is turned away at once, to come again.
        busy = _upload(client, grant, 1, b"one more")
        assert busy.status_code == 503 and busy.json()["error"] == "attempt_busy", busy.text
        assert int(busy.headers["retry-after"]) >= 1
        # Other attempts are not held up by this one.
        with session_scope() as db:
            other = uploads.issue_upload_token(db, new_attempt(db))
        assert _upload(client, other, 0, b"other attempt").status_code == 201
        # Too slow a body is answered 408 after the grace, long before the whole-body deadline.
        for trickler in tricklers:
            status, _, answer = trickler.wait_answer(timeout=ingest_api.BODY_DEADLINE_S + 10)
            assert (status, answer["error"]) == (408, "body_too_slow")
            assert ingest_api.BODY_GRACE_S - 1 <= trickler.answered_after <= ingest_api.BODY_GRACE_S + 15
    finally:
        for trickler in tricklers:
            trickler.close()
    # Their slots are free again.
    assert _upload(client, grant, 1, b"one more").status_code == 201
    assert recording(grant.attempt_id).chunk_count == 2


def _short_exam_attempt(db: Session, seconds: int) -> Attempt:
    attempt = new_attempt(db)
    attempt.deadline_at = attempt.started_at + timedelta(seconds=seconds)
    db.add(attempt)
    db.flush()
    return attempt


def test_a_streams_stored_bytes_are_bounded_by_its_exams_duration(client):
    with session_scope() as db:
        attempt = _short_exam_attempt(db, 20)
        grant = uploads.issue_upload_token(db, attempt)
        quota = upload_store.max_stream_bytes(attempt.started_at, attempt.deadline_at)
    # 20 s at the highest bitrate, 3x, plus the allowance: about 7 MB.
    assert 5_000_000 < quota < 10_000_000
    first = b"a" * (quota - 100_000)
    assert _upload(client, grant, 0, first).status_code == 201
    over = _upload(client, grant, 1, b"b" * 200_000)
    assert (over.status_code, over.json()["error"]) == (413, "quota_exceeded"), over.text
    # What still fits is taken, and a chunk sent again is answered as before.
    assert _upload(client, grant, 1, b"c" * 50_000).status_code == 201
    assert _upload(client, grant, 0, first).status_code == 200
    assert recording(grant.attempt_id).byte_count == quota - 50_000


def test_a_stream_has_a_bounded_number_of_segments(client, grant):
    assert _upload(client, grant, 0, b"first", segment=0).status_code == 201
    rec = recording(grant.attempt_id)
    with session_scope() as db:
        db.execute(insert(Segment), [{"recording_id": rec.id, "number": n, "received_at": utcnow()}
                                     for n in range(1, MAX_SEGMENTS_PER_STREAM)])
    refused = _upload(client, grant, 0, b"one segment too many", segment=MAX_SEGMENTS_PER_STREAM)
    assert (refused.status_code, refused.json()["error"]) == (429, "too_many_segments"), refused.text
    # Segments it has go on taking chunks.
    assert _upload(client, grant, 1, b"second", segment=0).status_code == 201
    assert _upload(client, grant, 0, b"late", segment=MAX_SEGMENTS_PER_STREAM - 1).status_code == 201


def test_each_page_load_issues_a_token_but_an_attempt_keeps_a_bounded_number(app_server):
    with session_scope() as db:
        attempt = new_attempt(db)
        grants = [uploads.issue_upload_token(db, attempt) for _ in range(uploads.MAX_TOKENS_PER_ATTEMPT + 7)]
        attempt_id = attempt.id
    with session_scope() as db:
        count = db.execute(select(func.count()).select_from(UploadToken)
                           .where(UploadToken.attempt_id == attempt_id)).scalar()
        assert count == uploads.MAX_TOKENS_PER_ATTEMPT
    fresh = TokenScopes()  # no cache: what the database says
    for grant in grants[-uploads.MAX_TOKENS_PER_ATTEMPT:]:
        assert fresh.authorize(grant.token, attempt_id, "camera").attempt_id == attempt_id
    for grant in grants[:7]:
        with pytest.raises(IngestError) as refused:
            fresh.authorize(grant.token, attempt_id, "camera")
        assert refused.value.code == "token_unknown"
    # Other attempts' tokens are untouched.
    with session_scope() as db:
        other = uploads.issue_upload_token(db, new_attempt(db))
    assert fresh.authorize(other.token, other.attempt_id, "camera").attempt_id == other.attempt_id
