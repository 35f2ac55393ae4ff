"""The least this stack spends on a chunk, to read bench/ingest.py's figures against.

Three measurements in one run, with the same bodies and the same paced load as bench/ingest.py's
sustained phase (1,000 candidates, a 237 kB chunk every 3 s, each candidate's first chunk before it):
- the server: the real one (granian with the app and its ingest processes), CPU of all its
  processes per stored chunk;
- HTTP alone: a bare ASGI app under granian, the server Reflex runs, that reads each PUT body as
  the chunk route does and answers 201: CPU of its processes per request;
- storing alone: UploadStore.store_chunk called from one thread of this process (token and checks,
  SHA-256, the durable write, the rows through the group commit): CPU of the process per chunk,
  one chunk every interval/candidates seconds (the load's rate), and back to back.
HTTP alone plus the lower of the two storing figures is the floor: what a chunk would cost with
nothing between the two (no routing or middleware, no hand-off to an ingest process, no threads
waiting on each other). On a 2-core virtual machine storing alone cost 0.92-1.93 ms a chunk at the
load's rate and 0.89-1.16 back to back, either the lower. Printed with the uploads per second the
cores allow at the floor and at the server's cost. The last line printed is one JSON object.

    python bench/ingest_floor.py [--candidates 1000] [--interval 3] [--duration 15]

Only the standard library is imported at the top: granian imports this module for the bare app.
"""

import argparse
import hashlib
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STORED_ROUNDS = 3  # chunks per attempt stored alone, after each attempt's first
STORED_ATTEMPTS = 200


async def bare_upload_app(scope, receive, send) -> None:
    """Reads a request's body in parts and joins them, as the chunk route does, and answers 201."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    answer = json.dumps({"size": len(b"".join(parts))}).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


def start_bare_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--log-level", "warning", "bench.ingest_floor:bare_upload_app"],
        cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the bare granian server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("the bare granian server did not start")


def store_alone(bodies, grants, every_s: float) -> tuple[int, float]:
    """(chunks, CPU ms per chunk of this process) of store_chunk called from this thread, one chunk
    every `every_s` (0: back to back), each attempt's first chunk apart."""
    from proctor_app.media.ingest.checks import ChunkUpload
    from proctor_app.media.ingest.store import UploadStore
    from proctor_app.runtime import clock, settings

    store = UploadStore(settings, clock)

    def run(seqs) -> int:
        count, due = 0, time.monotonic()
        for seq in seqs:
            for attempt_id, token in grants:
                if every_s:
                    time.sleep(max(0.0, due - time.monotonic()))
                    due += every_s
                body, sha = bodies[seq % len(bodies)]
                now = int(time.time() * 1000)
                store.store_chunk(token, ChunkUpload(
                    attempt_id=attempt_id, stream="camera", segment=0, seq=seq, body=body, sha256=sha,
                    start_ms=str(now - 3000), end_ms=str(now), mime_type="video/x-matroska;codecs=avc1,opus",
                    meta=None))
                count += 1
        return count

    run([0])
    before = resource.getrusage(resource.RUSAGE_SELF)
    count = run(range(1, 1 + STORED_ROUNDS))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return count, 1000 * (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between a candidate's chunks")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of paced load, each server")
    parser.add_argument("--bitrate-kbps", type=int, default=600, help="camera video bitrate")
    args = parser.parse_args()

    from bench import ingest  # first: it points the app at a private data folder
    from bench.harness import setup_attempts, start_server, stop_server
    from tests.support.server import free_port

    import psutil

    chunk_bytes = int(args.interval * (args.bitrate_kbps + ingest.AUDIO_KBPS) * 1000 / 8)
    bodies = [(body, hashlib.sha256(body).hexdigest())
              for body in (random.randbytes(chunk_bytes) for _ in range(ingest.BODY_POOL))]
    _, grants = setup_attempts(args.candidates, "Ingest floor")
    stored_grants = [setup_attempts(STORED_ATTEMPTS, f"Ingest floor, stored alone {n}")[1] for n in (1, 2)]
    ingest.drop_grow_jobs()

    def paced(port: int, cpu_seconds) -> tuple[int, int, int, float]:
        """(chunks acknowledged, given up on after retries, unanswered at the end, ms of
        `cpu_seconds()` per chunk acknowledged) of the sustained load, after each candidate's first
        chunk."""
        candidates = [ingest.Candidate(a, token, 0) for a, token in grants]
        ingest.run_loop(ingest.first_chunks(port, candidates, bodies, concurrency=32))
        first = sum(len(c.acked) for c in candidates)
        before = cpu_seconds()
        *_, unfinished = ingest.run_loop(ingest.sustained(port, candidates, bodies, args.interval,
                                                          args.duration, drain_s=5.0))
        spent = cpu_seconds() - before
        acked = sum(len(c.acked) for c in candidates) - first
        return acked, sum(len(c.lost) for c in candidates), unfinished, 1000 * spent / acked

    port = free_port()
    server = start_server(port)
    try:
        server_chunks, server_given_up, server_unfinished, server_ms = paced(
            port, lambda: sum(ingest.cpu_seconds(server).values()))
    finally:
        stop_server(server)

    port = free_port()
    bare = start_bare_server(port)
    try:
        processes = [psutil.Process(bare.pid), *psutil.Process(bare.pid).children(recursive=True)]
        http_requests, http_given_up, _, http_ms = paced(
            port, lambda: sum(sum(p.cpu_times()[:2]) for p in processes))
    finally:
        stop_server(bare)

    stored, store_ms = store_alone(bodies, stored_grants[0], every_s=args.interval / args.candidates)
    _, back_to_back_ms = store_alone(bodies, stored_grants[1], every_s=0.0)
    floor_ms = http_ms + min(store_ms, back_to_back_ms)
    cores = os.cpu_count() or 1
    print(f"paced load: {args.candidates} candidates, a {chunk_bytes} B chunk every {args.interval:g} s "
          f"for {args.duration:g} s, each candidate's first chunk before it")
    print(f"  the server: {server_ms:.2f} ms of CPU per stored chunk ({server_chunks} stored, "
          f"{server_given_up} given up on, {server_unfinished} unanswered at the end)")
    print(f"  HTTP alone (a bare ASGI app under granian): {http_ms:.2f} ms per request ({http_requests} answered)")
    print(f"  storing alone ({stored} chunks from one thread): {store_ms:.2f} ms per chunk at the load's rate, "
          f"{back_to_back_ms:.2f} ms back to back")
    print(f"floor (HTTP alone + the lower storing alone): {floor_ms:.2f} ms per chunk; the server spends "
          f"{server_ms / floor_ms:.2f}x the floor, {server_ms - floor_ms:.2f} ms between the two")
    print(f"  uploads per second {cores} cores allow, all their CPU spent on chunks: {1000 * cores / floor_ms:.0f} "
          f"at the floor, {1000 * cores / server_ms:.0f} at the server's cost")
    print(json.dumps({
        "candidates": args.candidates, "interval_s": args.interval, "duration_s": args.duration,
        "chunk_bytes": chunk_bytes, "cores": cores,
        "server_cpu_ms_per_chunk": round(server_ms, 3), "server_given_up": server_given_up,
        "server_unanswered_at_end": server_unfinished, "http_alone_cpu_ms_per_request": round(http_ms, 3),
        "http_alone_given_up": http_given_up, "store_alone_paced_cpu_ms_per_chunk": round(store_ms, 3),
        "store_alone_back_to_back_cpu_ms_per_chunk": round(back_to_back_ms, 3),
        "floor_cpu_ms_per_chunk": round(floor_ms, 3), "server_to_floor": round(server_ms / floor_ms, 3),
    }))


if __name__ == "__main__":
    main()
