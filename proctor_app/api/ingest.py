"""Upload routes for the candidate's browser: chunks, snapshots and proctoring events.

Authorised by the attempt's upload token (`Authorization: Bearer ...`), not the login cookie, so
uploads keep flowing while the page reloads. Chunks are stored in ingest processes, snapshots and
events in worker threads; the event loop only reads bodies and answers.
"""

import json

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proctor_app.config import config
from proctor_app.media.ingest.checks import MAX_SEGMENT, MAX_SEQ, MAX_SNAPSHOT_BYTES, ChunkUpload, parse_index
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.processes import THREADS_PER_PROCESS
from proctor_app.runtime import ingest_pool, settings, upload_store

MAX_EVENT_BATCH_BYTES = 512 * 1024
# Chunks are stored by ingest processes of their own (see media/ingest/processes.py), or with
# PROCTOR_INGEST_PROCESSES=0 in threads of this process (their own, so a burst cannot take the
# shared pool from the other routes).
_chunk_threads = anyio.CapacityLimiter(THREADS_PER_PROCESS)
# Chunks taken in at once, from reading the body to the answer; the others wait before their
# bodies are read, so a backlog queues up in the sockets instead of as bodies in memory.
_chunk_slots = anyio.Semaphore(max(1, config.ingest_processes) * THREADS_PER_PROCESS)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error(exc: IngestError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status,
                        headers={"Cache-Control": "no-store"})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise IngestError(413, "too_large", f"The body is larger than {limit} bytes.")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise IngestError(413, "too_large", f"The body is larger than {limit} bytes.")
        parts.append(part)
    return b"".join(parts)


async def _max_chunk_bytes() -> int:
    # Without a thread hop while the settings are fresh: hundreds of chunks a second ask.
    if settings.fresh() is not None:
        return upload_store.max_chunk_bytes()
    return await run_in_threadpool(upload_store.max_chunk_bytes)


async def put_chunk(request: Request) -> JSONResponse:
    async with _chunk_slots:
        return await _take_chunk(request)


async def _take_chunk(request: Request) -> JSONResponse:
    params = request.path_params
    try:
        attempt_id = parse_index(params["attempt_id"], "attempt", 2**31 - 1)
        upload = ChunkUpload(
            attempt_id=attempt_id, stream=params["stream"],
            segment=parse_index(params["segment"], "segment", MAX_SEGMENT),
            seq=parse_index(params["seq"], "seq", MAX_SEQ),
            body=await _body(request, await _max_chunk_bytes()),
            sha256=request.headers.get("x-content-sha256"),
            start_ms=request.headers.get("x-chunk-start-ms"), end_ms=request.headers.get("x-chunk-end-ms"),
            mime_type=request.headers.get("content-type"), meta=request.headers.get("x-chunk-meta"))
        if ingest_pool is not None:
            ack = await ingest_pool.store_chunk(bearer_token(request), upload)
        else:
            ack = await anyio.to_thread.run_sync(upload_store.store_chunk, bearer_token(request), upload,
                                                 limiter=_chunk_threads)
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return JSONResponse({"error": "disconnected"}, status_code=400)
    return JSONResponse(ack.as_json(), status_code=201 if ack.status == "stored" else 200)


async def put_snapshot(request: Request) -> JSONResponse:
    params = request.path_params
    try:
        attempt_id = parse_index(params["attempt_id"], "attempt", 2**31 - 1)
        seq = parse_index(params["seq"], "seq", MAX_SEQ)
        body = await _body(request, MAX_SNAPSHOT_BYTES)
        result = await run_in_threadpool(
            upload_store.store_snapshot, bearer_token(request), attempt_id, seq, body,
            request.headers.get("x-content-sha256"), request.headers.get("x-taken-ms"))
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return JSONResponse({"error": "disconnected"}, status_code=400)
    return JSONResponse(result, status_code=201 if result["status"] == "stored" else 200)


async def post_events(request: Request) -> JSONResponse:
    try:
        attempt_id = parse_index(request.path_params["attempt_id"], "attempt", 2**31 - 1)
        body = await _body(request, MAX_EVENT_BATCH_BYTES)
        try:
            events = json.loads(body).get("events")
        except (ValueError, AttributeError):
            raise IngestError(400, "bad_batch", 'The body must be JSON: {"events": [...]}.') from None
        result = await run_in_threadpool(upload_store.record_browser_events, bearer_token(request), attempt_id,
                                         events)
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
