"""Chunk ingest under load: N simulated candidates, each PUTting a realistic chunk every few seconds
to the real server (Reflex's production backend: granian with the app, as `reflex run --env prod`
starts it, without the static frontend), over loopback with an async HTTP client.

Reports sustained uploads/s, p50/p99 acknowledgement latency, server CPU, lost chunks (acknowledged
but not in the database and on disk, or never acknowledged), and a saturation phase (uploads back
to back, first). The sustained phase is an exam under way: every candidate's first chunk is sent
before it, and what it cost is given apart. Both throughputs are given as ratios to the raw write-and-fsync throughput of the same
disk (temp file, fsync, rename, fsync the folder: what each chunk costs at least), measured in the
same run. The last line printed is one JSON object.

    python bench/ingest.py [--quick] [--candidates 1000] [--interval 3] [--duration 60]
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import (  # noqa: E402  (first: it points the app at a private data folder)
    LoopbackClient,
    percentile,
    server_processes,
    setup_attempts,
    start_server,
    stop_server,
)

import psutil  # noqa: E402

try:  # the load generator runs on the server's cores: uvloop leaves them more of it (POSIX only)
    from uvloop import run as run_loop  # noqa: E402
except ImportError:
    run_loop = asyncio.run
from sqlmodel import delete, select  # noqa: E402

from proctor_app.db import session_scope  # noqa: E402
from proctor_app.media.storage import storage  # noqa: E402
from proctor_app.models import Chunk, Job, Recording, Segment  # noqa: E402
from proctor_app.services.processing import GROW  # noqa: E402
from tests.support.server import free_port  # noqa: E402

MIME = "video/x-matroska;codecs=avc1,opus"
AUDIO_KBPS = 32
BODY_POOL = 8
P99_TARGET_MS = 250
RETRIES = 5
RAW_ROUNDS = 5


def _by_role(proc: subprocess.Popen, measure) -> dict[str, float]:
    """`measure(process)` summed over the server's processes: "ingest" (its ingest processes) and
    "app" (granian, its workers and the relays)."""
    totals = {"app": 0.0, "ingest": 0.0}
    for role, process in server_processes(proc).items():
        try:
            totals["ingest" if role.startswith("ingest") else "app"] += measure(process)
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            continue
    return totals


def cpu_seconds(proc: subprocess.Popen) -> dict[str, float]:
    """User + system CPU of the server's processes by role."""
    return _by_role(proc, lambda process: sum(process.cpu_times()[:2]))


def _thread_switches(process: psutil.Process) -> int:
    # /proc/PID/status counts the main thread's switches only: every thread's are summed.
    total = 0
    for status in Path(f"/proc/{process.pid}/task").glob("*/status"):
        with contextlib.suppress(FileNotFoundError):
            for line in status.read_text().splitlines():
                if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                    total += int(line.split()[1])
    return total


def context_switches(proc: subprocess.Popen) -> dict[str, float]:
    """Context switches (voluntary and not) of the server's processes' threads by role (Linux):
    every wait for the GIL, a queue, a socket or an fsync is one, and each costs CPU."""
    return _by_role(proc, _thread_switches)


def per_chunk(before: dict[str, float], after: dict[str, float], chunks: int, scale: float = 1.0) -> dict[str, float]:
    """What the server spent per stored chunk, by role and in all ("total"), times `scale`."""
    spent = {role: after[role] - before[role] for role in before}
    spent["total"] = sum(spent.values())
    return {role: round(scale * value / max(1, chunks), 2) for role, value in spent.items()}


def cpu_ms_per_chunk(before: dict[str, float], after: dict[str, float], chunks: int) -> dict[str, float]:
    """Milliseconds of CPU per stored chunk, by role and in all ("total")."""
    return per_chunk(before, after, chunks, scale=1000)


def raw_fsync_writes_per_s(size: int, seconds: float, threads: int) -> float:
    """Chunk-sized files written the way a chunk is at the very least, on the same disk."""
    folder = storage.root() / "bench-raw"
    folder.mkdir(parents=True, exist_ok=True)
    data = random.randbytes(size)
    counts = [0] * threads
    stop = time.monotonic() + seconds
    prefix = f"{time.monotonic_ns()}-"

    def writer(n: int) -> None:
        while time.monotonic() < stop:
            path = folder / f"{prefix}{n}-{counts[n]}"
            tmp = folder / f".{prefix}{n}-{counts[n]}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, path)
            dir_fd = os.open(folder, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)
            counts[n] += 1

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    [w.start() for w in workers]
    [w.join() for w in workers]
    elapsed = time.monotonic() - started
    # The files stay until the run ends: ext4 without a journal (as here) skips inodes freed in the
    # last 30 s when it creates a file, reading each one's deletion time, so deleting them now made
    # every chunk the server then wrote measurably slower.
    return sum(counts) / elapsed


def raw_rate_rounds(size: int, seconds: float, threads: int, rounds: int = RAW_ROUNDS) -> list[float]:
    """The raw rate measured `rounds` times: on these virtual disks the rate of a second or two
    swings (one run: 5,512, 5,463, 2,992, 2,410, 2,407 per s), so the one round measured before
    moved the ratios below by up to half. The ratios use the median."""
    return [raw_fsync_writes_per_s(size, seconds, threads) for _ in range(rounds)]


def file_create_cpu_us(count: int = 300) -> float:
    """CPU microseconds of creating an empty file in the storage folder: on ext4 without a journal
    it grows with the inodes freed near there lately (other programs' deleted files), which every
    chunk's temp file pays too."""
    folder = storage.root() / "bench-probe"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.thread_time()
    for n in range(count):
        os.close(os.open(folder / str(n), os.O_WRONLY | os.O_CREAT, 0o640))
    return 1e6 * (time.thread_time() - started) / count


def drop_grow_jobs() -> None:
    """The chunks here are random bytes, not media: the grow job each attempt starts with would give
    up at its first step, a cost of this bench's bodies (1,000 of them in its first seconds), not
    of ingest. bench/finalize.py and bench/soak.py measure growing on real recordings."""
    with session_scope() as db:
        db.exec(delete(Job).where(Job.kind == GROW))


class Candidate:
    """One browser: a chunk every `interval` seconds, retried with backoff when it fails."""

    def __init__(self, attempt_id: int, token: str, segment: int):
        self.attempt_id, self.token, self.segment = attempt_id, token, segment
        self.seq = 0
        self.acked: list[int] = []
        self.lost: list[int] = []

    async def put(self, client, bodies, seq, latencies, errors) -> None:
        body, sha = bodies[seq % len(bodies)]
        now = int(time.time() * 1000)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": MIME, "X-Content-SHA256": sha,
                   "X-Chunk-Start-Ms": str(now - 3000), "X-Chunk-End-Ms": str(now)}
        url = f"/api/attempts/{self.attempt_id}/streams/camera/segments/{self.segment}/chunks/{seq}"
        for attempt in range(RETRIES):
            started = time.perf_counter()
            try:
                status = await client.send("PUT", url, headers, body)
                if status in (200, 201):
                    latencies.append(time.perf_counter() - started)
                    self.acked.append(seq)
                    return
                errors.append(status)
            except LoopbackClient.Failed as exc:
                errors.append(str(exc))
            await asyncio.sleep(2 ** attempt * random.uniform(0.5, 1.5))
        self.lost.append(seq)


async def sustained(port, candidates, bodies, interval, duration, drain_s):
    """Returns (latencies, errors, schedule lags, uploads still unanswered `drain_s` after the end)."""
    latencies, errors, lags = [], [], []
    client = LoopbackClient(port, connections=256)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        end = start + duration
        uploads = set()

        async def run(candidate: Candidate):
            due = start + random.uniform(0, interval)
            while due < end:
                await asyncio.sleep(max(0, due - loop.time()))
                lags.append(loop.time() - due)
                task = asyncio.create_task(candidate.put(client, bodies, candidate.seq, latencies, errors))
                uploads.add(task)
                task.add_done_callback(uploads.discard)
                candidate.seq += 1
                due += interval

        await asyncio.gather(*(run(c) for c in candidates))
        unfinished = 0
        if uploads:
            _, pending = await asyncio.wait(list(uploads), timeout=drain_s)
            unfinished = len(pending)
            for task in pending:
                task.cancel()
    finally:
        client.close()
    return latencies, errors, lags, unfinished


async def first_chunks(port, candidates, bodies, concurrency):
    """Each candidate's first chunk, before the timed load: what an attempt costs once (its
    recording row, its folders, its token and target looked up) is paid at the start of an exam,
    in its first seconds; the sustained phase measures an exam under way."""
    client = LoopbackClient(port, connections=concurrency)
    try:
        pending = iter(candidates)

        async def worker():
            for candidate in pending:
                await candidate.put(client, bodies, candidate.seq, [], [])
                candidate.seq += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        client.close()


async def saturated(port, grants, bodies, seconds, concurrency):
    """Uploads back to back from `concurrency` clients: (uploads stored, per second), the most the
    server takes."""
    done = 0
    client = LoopbackClient(port, connections=concurrency)
    try:
        stop = time.monotonic() + seconds

        async def worker(n: int):
            nonlocal done
            candidate = Candidate(*grants[n % len(grants)], segment=1000 + n // len(grants))
            while time.monotonic() < stop:
                await candidate.put(client, bodies, candidate.seq, [], [])
                candidate.seq += 1
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done, done / (time.monotonic() - started)
    finally:
        client.close()


def verify(candidates: list[Candidate], bodies) -> int:
    """Acknowledged chunks missing from the database or disk, or stored with the wrong bytes."""
    sizes = {len(body) for body, _ in bodies}
    missing = 0
    with session_scope() as db:
        rows = db.exec(select(Recording.attempt_id, Segment.number, Chunk.seq, Chunk.size, Chunk.sha256,
                              Chunk.path)
                       .join(Segment, Segment.recording_id == Recording.id)
                       .join(Chunk, Chunk.segment_id == Segment.id)
                       .where(Segment.number == 0)).all()
    stored = {(a, seq): (size, sha, path) for a, _, seq, size, sha, path in rows}
    shas = {sha for _, sha in bodies}
    for candidate in candidates:
        for seq in candidate.acked:
            row = stored.get((candidate.attempt_id, seq))
            if row is None or row[0] not in sizes or row[1] not in shas:
                missing += 1
            elif seq % 10 == 0:  # every tenth file is read back and hashed
                if hashlib.sha256(storage.absolute(row[2]).read_bytes()).hexdigest() != row[1]:
                    missing += 1
            elif storage.absolute(row[2]).stat().st_size != row[0]:
                missing += 1
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="finish within a minute")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between a candidate's chunks")
    parser.add_argument("--duration", type=float, default=None, help="seconds of sustained load")
    parser.add_argument("--bitrate-kbps", type=int, default=600, help="camera video bitrate")
    parser.add_argument("--redis", metavar="URL", help="run the server as in production with Redis "
                        "(several workers), e.g. redis://127.0.0.1:6379")
    args = parser.parse_args()
    duration = args.duration or (15.0 if args.quick else 60.0)
    saturate_s = 3.0 if args.quick else 10.0
    raw_s = 1.0 if args.quick else 3.0
    drain_s = 5.0 if args.quick else 30.0
    chunk_bytes = int(args.interval * (args.bitrate_kbps + AUDIO_KBPS) * 1000 / 8)

    t0 = time.monotonic()
    _, grants = setup_attempts(args.candidates, "Ingest benchmark")
    drop_grow_jobs()
    print(f"setup: {args.candidates} attempts in progress with upload tokens "
          f"({time.monotonic() - t0:.1f} s)", flush=True)
    bodies = []
    for _ in range(BODY_POOL):
        body = random.randbytes(chunk_bytes)
        bodies.append((body, hashlib.sha256(body).hexdigest()))
    create_us = file_create_cpu_us()
    raw_rounds = raw_rate_rounds(chunk_bytes, raw_s, threads=8)
    raw = statistics.median(raw_rounds)
    print(f"baseline: raw write+fsync+rename+fsync(dir) of {chunk_bytes} B files: {raw:.0f}/s (median of "
          f"{', '.join(f'{r:.0f}' for r in raw_rounds)}); "
          f"creating a file costs {create_us:.0f} us of CPU in {storage.root()}", flush=True)

    port = free_port()
    server = start_server(port, args.redis)
    load_before = os.getloadavg()[0]
    try:
        # Capacity first, on the fresh server: after an overloaded sustained phase it would still
        # be answering requests the clients gave up on.
        cpu_before, switches_before = cpu_seconds(server), context_switches(server)
        saturated_done, saturated_rate = run_loop(saturated(port, grants, bodies, saturate_s, concurrency=32))
        saturated_cpu_ms = cpu_ms_per_chunk(cpu_before, cpu_seconds(server), saturated_done)
        saturated_switches = per_chunk(switches_before, context_switches(server), saturated_done)
        candidates = [Candidate(a, token, 0) for a, token in grants]
        cpu_before = cpu_seconds(server)
        run_loop(first_chunks(port, candidates, bodies, concurrency=32))
        first_acked = sum(len(c.acked) for c in candidates)
        first_cpu_ms = cpu_ms_per_chunk(cpu_before, cpu_seconds(server), first_acked)
        cpu_before, switches_before, wall_before = cpu_seconds(server), context_switches(server), time.monotonic()
        client_before = sum(psutil.Process().cpu_times()[:2])
        latencies, errors, lags, unfinished = run_loop(
            sustained(port, candidates, bodies, args.interval, duration, drain_s))
        wall = time.monotonic() - wall_before
        cpu_after, switches_after = cpu_seconds(server), context_switches(server)
        client_pct = 100 * (sum(psutil.Process().cpu_times()[:2]) - client_before) / wall
        cpu_pct = 100 * (sum(cpu_after.values()) - sum(cpu_before.values())) / wall
        roles = server_processes(server)
        ingesters = sum(role.startswith("ingest") for role in roles)
        workers = sum(role.startswith("app") for role in roles)
        acked = sum(len(c.acked) for c in candidates) - first_acked
        sustained_cpu_ms = cpu_ms_per_chunk(cpu_before, cpu_after, acked)
        sustained_switches = per_chunk(switches_before, switches_after, acked)
        never = sum(len(c.lost) for c in candidates)
    finally:
        stop_server(server)
    lost = verify(candidates, bodies) + never
    load = os.getloadavg()[0]

    offered = args.candidates / args.interval
    rate = acked / wall
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    lag_p99 = percentile(lags, 0.99) * 1000
    print(f"server: {workers} app worker process(es){' with Redis' if args.redis else ''} and "
          f"{ingesters} ingest process(es), SQLite")
    print(f"sustained: {args.candidates} candidates, a {chunk_bytes} B chunk every {args.interval:g} s "
          f"(offered {offered:.0f}/s) for {duration:g} s")
    print(f"  acknowledged {acked} chunks: {rate:.0f} uploads/s = {rate / raw:.3f} x raw fsync throughput")
    print(f"  ack latency p50 {p50:.1f} ms, p99 {p99:.1f} ms (target <= {P99_TARGET_MS} ms); "
          f"client schedule lag p99 {lag_p99:.1f} ms")
    print(f"  server CPU {cpu_pct:.0f}% of one core; failed attempts retried: {len(errors)}; lost chunks: {lost}; "
          f"unanswered {drain_s:g} s after the end: {unfinished}")
    print(f"  load generator CPU {client_pct:.0f}% of one core")
    print(f"  server CPU per stored chunk: {sustained_cpu_ms['total']:.2f} ms "
          f"(app {sustained_cpu_ms['app']:.2f}, ingest processes {sustained_cpu_ms['ingest']:.2f}); "
          f"an attempt's first chunk, before: {first_cpu_ms['total']:.2f} ms")
    print(f"  context switches per stored chunk: {sustained_switches['total']:.1f} "
          f"(app {sustained_switches['app']:.1f}, ingest processes {sustained_switches['ingest']:.1f})")
    print(f"  machine load average (1 min): {load_before:.1f} before, {load:.1f} after, on {os.cpu_count()} cores")
    print(f"saturated (32 uploaders back to back): {saturated_rate:.0f} uploads/s = "
          f"{saturated_rate / raw:.3f} x raw fsync throughput; server CPU per stored chunk "
          f"{saturated_cpu_ms['total']:.2f} ms (app {saturated_cpu_ms['app']:.2f}, "
          f"ingest processes {saturated_cpu_ms['ingest']:.2f}), {saturated_switches['total']:.1f} context switches")
    print(json.dumps({
        "server_workers": workers, "ingest_processes": ingesters, "redis": bool(args.redis),
        "candidates": args.candidates, "interval_s": args.interval, "duration_s": duration,
        "chunk_bytes": chunk_bytes, "offered_per_s": round(offered, 1),
        "uploads_per_s": round(rate, 1), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
        "client_lag_p99_ms": round(lag_p99, 1), "server_cpu_pct": round(cpu_pct, 1),
        "load_generator_cpu_pct": round(client_pct, 1), "cpu_ms_per_chunk": sustained_cpu_ms, "first_chunk_cpu_ms": first_cpu_ms, "saturated_cpu_ms_per_chunk": saturated_cpu_ms,
        "context_switches_per_chunk": sustained_switches, "saturated_context_switches_per_chunk": saturated_switches,
        "retried_failures": len(errors), "lost_chunks": lost, "unanswered_at_end": unfinished,
        "load_average_1m_before": round(load_before, 2), "load_average_1m_after": round(load, 2),
        "cores": os.cpu_count(),
        "raw_fsync_writes_per_s": round(raw, 1), "raw_rounds_per_s": [round(r) for r in raw_rounds], "file_create_cpu_us": round(create_us, 1), "ratio_sustained_to_raw": round(rate / raw, 3),
        "saturated_uploads_per_s": round(saturated_rate, 1),
        "ratio_saturated_to_raw": round(saturated_rate / raw, 3),
        "target_met": lost == 0 and unfinished == 0 and p99 <= P99_TARGET_MS,
    }))


if __name__ == "__main__":
    main()
