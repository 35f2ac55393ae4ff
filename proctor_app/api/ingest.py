"""Upload routes for the candidate's browser: chunks, snapshots and proctoring events.

Authorised by the attempt's upload token (`Authorization: Bearer ...`), not the login cookie, so
uploads keep flowing while the page reloads. The token is checked before a slot is taken or a byte
of the body is read; bodies must come within a deadline at a minimum rate; an attempt has a few
uploads in flight at most, and a full server answers 503 with Retry-After instead of queueing.
Chunks are stored in ingest processes, snapshots and events in worker threads; the event loop only
reads bodies and answers.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proctor_app.config import config
from proctor_app.logs import Throttled, current_attempt
from proctor_app.media.ingest.checks import (
    MAX_SEGMENT,
    MAX_SEQ,
    MAX_SNAPSHOT_BYTES,
    ChunkUpload,
    parse_index,
)
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.processes import THREADS_PER_PROCESS
from proctor_app.metrics import count_chunk_upload
from proctor_app.runtime import ingest_pool, settings, upload_store

MAX_EVENT_BATCH_BYTES = 512 * 1024
# Chunks are stored by ingest processes of their own (see media/ingest/processes.py), or with
# PROCTOR_INGEST_PROCESSES=0 in threads of this process (their own, so a burst cannot take the
# shared pool from the other routes).
_chunk_threads = anyio.CapacityLimiter(THREADS_PER_PROCESS)
# Chunks taken in at once, from reading the body to the answer; the others wait (at most
# SLOT_WAIT_S, then 503 + Retry-After) before their bodies are read, so a backlog queues up in
# the sockets instead of as bodies in memory. Snapshots and event batches have slots of their own.
_chunk_slots = anyio.Semaphore(max(1, config.ingest_processes) * THREADS_PER_PROCESS)
_other_slots = anyio.Semaphore(THREADS_PER_PROCESS)
SLOT_WAIT_S = 10.0
# Uploads of one attempt in flight at once (its browser sends one at a time; a few tabs, more).
MAX_IN_FLIGHT_PER_ATTEMPT = 4
RETRY_AFTER_S = 2
# Every body is read within BODY_DEADLINE_S and, after BODY_GRACE_S, at an average of at least
# BODY_MIN_RATE bytes/s, else 408: a 237 kB chunk takes 15 s at that rate (127 kbit/s), under
# a second on a slow mobile link. The browser gives up on a request after 60 s itself.
BODY_DEADLINE_S = 60.0
BODY_GRACE_S = 5.0
BODY_MIN_RATE = 16 * 1024
BODY_SLACK_S = 5.0
_in_flight: dict[int, int] = {}  # attempt id -> uploads under way (the event loop's own)
# Refusals are normal in bursts (a busy server, a client retrying): one line per kind a minute.
_refusals = Throttled(logging.getLogger("proctor_app.ingest"))


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error(exc: IngestError) -> JSONResponse:
    _refusals.warning(f"{exc.status} {exc.code}", "upload refused: %s %s: %s", exc.status, exc.code,
                      exc.message)
    headers = {"Cache-Control": "no-store"}
    if exc.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if exc.status in (401, 403, 408, 413, 503):  # answered before the body was read (all of it)
        headers["Connection"] = "close"
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status, headers=headers)


async def _authorize(token: str | None, attempt_id: int, stream: str | None) -> None:
    """The upload token checked before anything else (a slot, a byte of the body): from the cache
    on the event loop, a miss in a thread. Raises IngestError (401/403)."""
    if upload_store.token_cached(token):
        upload_store.authorize(token, attempt_id, stream)
    else:
        await run_in_threadpool(upload_store.authorize, token, attempt_id, stream)


@contextlib.asynccontextmanager
async def _admitted(attempt_id: int, slots: anyio.Semaphore) -> AsyncIterator[None]:
    """One of the attempt's few uploads in flight and one of the slots, or 503 (Retry-After)."""
    if _in_flight.get(attempt_id, 0) >= MAX_IN_FLIGHT_PER_ATTEMPT:
        raise IngestError(503, "attempt_busy", "This attempt has too many uploads under way; send it again.")
    _in_flight[attempt_id] = _in_flight.get(attempt_id, 0) + 1
    try:
        try:
            slots.acquire_nowait()  # a free slot without a cancel scope: most uploads find one
        except anyio.WouldBlock:
            with anyio.move_on_after(SLOT_WAIT_S) as waited:
                await slots.acquire()
            if waited.cancelled_caught:
                raise IngestError(503, "server_busy", "The server is busy; send it again.") from None
        try:
            yield
        finally:
            slots.release()
    finally:
        if _in_flight[attempt_id] <= 1:
            del _in_flight[attempt_id]
        else:
            _in_flight[attempt_id] -= 1


def _too_large(limit: int) -> IngestError:
    return IngestError(413, "too_large", f"The body is larger than {limit} bytes.")


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit`, and with 408
    when it comes too slowly (BODY_DEADLINE_S, BODY_MIN_RATE after BODY_GRACE_S)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts, size = [], 0
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    # One timer per body: at the time the body is late (the grace, or when what came so far falls
    # below the minimum rate), moved on by BODY_SLACK_S whenever what came makes it later, so it
    # is rarely moved and never fires early (at most BODY_SLACK_S late).
    late_at = started + BODY_GRACE_S
    try:
        async with asyncio.timeout_at(loop.time() + BODY_GRACE_S) as timer:
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise _too_large(limit)
                parts.append(part)
                due = started + min(BODY_DEADLINE_S, max(BODY_GRACE_S, size / BODY_MIN_RATE))
                if due > late_at:
                    late_at = min(due + BODY_SLACK_S, started + BODY_DEADLINE_S)
                    timer.reschedule(loop.time() + (late_at - time.monotonic()))
    except TimeoutError:
        raise IngestError(408, "body_too_slow", f"The body came too slowly: {size} bytes in "
                          f"{time.monotonic() - started:.0f} s.") from None
    return b"".join(parts)


async def _max_chunk_bytes() -> int:
    # Without a thread hop while the settings are fresh: hundreds of chunks a second ask.
    if settings.fresh() is not None:
        return upload_store.max_chunk_bytes()
    return await run_in_threadpool(upload_store.max_chunk_bytes)


def _attempt_id(request: Request) -> int:
    return parse_index(request.path_params["attempt_id"], "attempt", 2**31 - 1)


async def put_chunk(request: Request) -> JSONResponse:
    started = time.perf_counter()
    response = await _put_chunk(request)
    count_chunk_upload(response.status_code, time.perf_counter() - started)
    return response


async def _put_chunk(request: Request) -> JSONResponse:
    params = request.path_params
    try:
        attempt_id = _attempt_id(request)
        current_attempt.set(attempt_id)
        stream = params["stream"]
        segment = parse_index(params["segment"], "segment", MAX_SEGMENT)
        seq = parse_index(params["seq"], "seq", MAX_SEQ)
        token = bearer_token(request)
        await _authorize(token, attempt_id, stream)
        async with _admitted(attempt_id, _chunk_slots):
            upload = ChunkUpload(
                attempt_id=attempt_id, stream=stream, segment=segment, seq=seq,
                body=await _body(request, await _max_chunk_bytes()),
                sha256=request.headers.get("x-content-sha256"),
                start_ms=request.headers.get("x-chunk-start-ms"), end_ms=request.headers.get("x-chunk-end-ms"),
                mime_type=request.headers.get("content-type"), meta=request.headers.get("x-chunk-meta"))
            if ingest_pool is not None:
                ack = await ingest_pool.store_chunk(token, upload)
            else:
                ack = await anyio.to_thread.run_sync(upload_store.store_chunk, token, upload,
                                                     limiter=_chunk_threads)
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return JSONResponse({"error": "disconnected"}, status_code=400)
    return JSONResponse(ack.as_json(), status_code=201 if ack.status == "stored" else 200)


async def put_snapshot(request: Request) -> JSONResponse:
    try:
        attempt_id = _attempt_id(request)
        current_attempt.set(attempt_id)
        seq = parse_index(request.path_params["seq"], "seq", MAX_SEQ)
        token = bearer_token(request)
        await _authorize(token, attempt_id, None)  # whatever the video flags
        async with _admitted(attempt_id, _other_slots):
            body = await _body(request, MAX_SNAPSHOT_BYTES)
            result = await run_in_threadpool(
                upload_store.store_snapshot, token, attempt_id, seq, body,
                request.headers.get("x-content-sha256"), request.headers.get("x-taken-ms"))
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return JSONResponse({"error": "disconnected"}, status_code=400)
    return JSONResponse(result, status_code=201 if result["status"] == "stored" else 200)


async def post_events(request: Request) -> JSONResponse:
    try:
        attempt_id = _attempt_id(request)
        current_attempt.set(attempt_id)
        token = bearer_token(request)
        await _authorize(token, attempt_id, None)
        async with _admitted(attempt_id, _other_slots):
            body = await _body(request, MAX_EVENT_BATCH_BYTES)
            try:
                events = json.loads(body).get("events")
            except (ValueError, AttributeError):
                raise IngestError(400, "bad_batch", 'The body must be JSON: {"events": [...]}.') from None
            result = await run_in_threadpool(upload_store.record_browser_events, token, attempt_id, events)
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return JSONResponse({"error": "disconnected"}, status_code=400)
    return JSONResponse(result)


routes = [
    Route("/api/attempts/{attempt_id}/streams/{stream}/segments/{segment}/chunks/{seq}", put_chunk,
          methods=["PUT"]),
    Route("/api/attempts/{attempt_id}/snapshots/{seq}", put_snapshot, methods=["PUT"]),
    Route("/api/attempts/{attempt_id}/events", post_events, methods=["POST"]),
]
