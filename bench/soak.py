"""Soak: the real server (bench/harness.py: the app process with its job worker, the ingest
processes, the relay process) under simulated candidates for a configurable time, watched for leaks.

Each candidate's browser is modelled on its upload queue (assets/upload_queue.js): one request at a
time, every failure retried with the same backoff until acknowledged, events sent in batches. It
sends a camera chunk every `--interval` seconds (pieces of one real H.264 recording, 320x240, so
that processing has real work), a JPEG snapshot every `--snapshot-every` seconds and proctoring
events every `--events-every` seconds. A share of the candidates (`--live-share`) also publish their
grid tile live (WHIP, aiortc, pre-encoded VP8) and `--viewers` proctors each watch every live tile
(WHEP), as the grid does. Each candidate starts the exam with its recorder (within the first
interval) and submits it when the recording ends (`--minutes` later), so that a clean recording
spans its attempt; once the lost uploads are counted the browsers send "uploads flushed" and the
run waits for the processing jobs (MP4, HLS ladder) the submits queued.

Reported: lost chunks, snapshots and events (acknowledged but missing in the database or on disk,
or never acknowledged: must be 0); the p99 acknowledgement latency of each minute; the RSS and open
file descriptors of every server process over time; the database and storage sizes; the jobs left
(and failed) at the end. Memory and descriptors must be flat after the warm-up: the least-squares
slope per minute of the whole server's, over the load after the warm-up, is quoted against a bound:
- descriptors, FD_BOUND_PER_MIN: a descriptor leaked per chunk grows them by the chunks a minute
  (600/min for the suite's 30 candidates at 3 s; tried once with such a leak in the ingest store:
  +800/min at 40 candidates), a leak in one chunk of a hundred still by 6/min; a server that leaks
  none holds its connections (one per browser, kept alive), sockets and files steady, give or take
  the few open for the requests under way when it is sampled;
- memory, RSS_BOUND_MB_PER_MIN: a leak of 35 kB per chunk (its headers, rows and a few buffers,
  say) grows it by 20 MB/min at 600 chunks/min, one body kept per chunk (about 240 kB) by
  140 MB/min; below that, a short window cannot tell a leak from the allocators growing their
  arenas in steps (the app process's job worker grows the MP4s in threads: a thread's new arena
  added 12 MB at once, read as 6.9 MB/min in the suite's one-minute window, while a 6-minute run
  levelled off at +2.2 MB/min). A longer run's window is longer and its slope is quoted.

    python bench/soak.py [--candidates 1000] [--minutes 10] [--live-share 0.02] [--viewers 1]

The last line printed is one JSON object; the exit status is 1 when a check fails.
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import (  # noqa: E402  (first: it points the app at a private data folder)
    DATA,
    LoopbackClient,
    percentile,
    server_processes,
    setup_attempts,
    start_server,
    stop_server,
)

import httpx  # noqa: E402
from sqlmodel import func, select  # noqa: E402

from proctor_app.auth import sessions  # noqa: E402
from proctor_app.auth.sessions import SESSION_COOKIE  # noqa: E402
from proctor_app.config import config  # noqa: E402
from proctor_app.db import session_scope  # noqa: E402
from proctor_app.media.processing.ffmpeg import FFMPEG  # noqa: E402
from proctor_app.media.storage import storage  # noqa: E402
from proctor_app.models import (  # noqa: E402
    Attempt,
    Chunk,
    Job,
    JobStatus,
    ProctoringEvent,
    Recording,
    Role,
    Segment,
    Snapshot,
)
from proctor_app.services import attempts  # noqa: E402
from proctor_app.services.settings import update_settings  # noqa: E402
from tests.support import samples  # noqa: E402
from tests.support.factories import assign, make_user  # noqa: E402
from tests.support.live_clients import EncodedSource, Publisher, Viewer, encode_clip  # noqa: E402
from tests.support.server import free_port  # noqa: E402

MIME = samples.MIME["h264"]
SIZE, FPS = (320, 240), 15
TILE_FPS = 15
LIVE_STREAM = "camera_low"  # the grid's tile
PROCTOR_PASSWORD = "soak-proctor-1"
FD_BOUND_PER_MIN = 5.0
RSS_BOUND_MB_PER_MIN = 20.0
# As the browser's queue: backoff from 1 s doubling to 30 s ("equal jitter"), a request given up
# after 60 s, events sent at most every 2 s.
BACKOFF_BASE_S, BACKOFF_CAP_S, REQUEST_TIMEOUT_S, EVENT_BATCH_S = 1.0, 30.0, 60.0, 2.0
EVENT_KINDS = ("tab_hidden", "tab_visible", "window_blur", "window_focus")
EVENTS_AT_ONCE = 2
SAMPLE_S = 5.0
START_DELAY_S = 3.0  # from making the load to its start: time to start the exams
STORAGE_SAMPLE_S = 60.0


def backoff_s(failures: int) -> float:
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return step / 2 + random.random() * step / 2


@dataclass
class Browser:
    """One candidate's page: what it queued, and what the server acknowledged."""

    attempt_id: int
    token: str
    items: list = field(default_factory=list)  # (kind, number, path, headers, body), oldest first
    events: list = field(default_factory=list)  # events not yet acknowledged
    acked: dict = field(default_factory=lambda: {"chunk": set(), "snapshot": set(), "event": set()})
    queued: dict = field(default_factory=lambda: {"chunk": 0, "snapshot": 0, "event": 0})
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    producing: bool = True
    client: LoopbackClient | None = None  # its keep-alive connection to the server
    phase: float = 0.0  # when, after the load's start, the candidate starts the exam and its recorder


class Load:
    """The candidates' browsers against the server, one upload queue each."""

    def __init__(self, port: int, browsers: list[Browser], pieces: list[bytes], snapshot: bytes,
                 interval: float, snapshot_every: float, events_every: float):
        self.browsers, self.pieces, self.snapshot = browsers, pieces, snapshot
        self.piece_shas = [hashlib.sha256(p).hexdigest() for p in pieces]
        self.snapshot_sha = hashlib.sha256(snapshot).hexdigest()
        self.every = {"chunk": interval, "snapshot": snapshot_every, "event": events_every}
        for b in browsers:
            b.client = LoopbackClient(port, connections=1)
        self.latencies: list[tuple[int, float]] = []  # (minute of the run, seconds) per acknowledged request
        self.failures: dict[str, int] = {}
        self.lags: list[float] = []  # how late the load generator queued things (its own overload)
        self.started = time.monotonic() + START_DELAY_S
        self.started_wall = time.time() + START_DELAY_S
        for b in browsers:
            b.phase = random.uniform(0, interval)

    def started_at(self, b: Browser) -> datetime:
        return datetime.fromtimestamp(self.started_wall + b.phase, UTC)

    def ended_at(self, b: Browser) -> datetime:
        return self.started_at(b) + timedelta(seconds=len(self.pieces) * self.every["chunk"])

    def start_exams(self) -> None:
        """Each candidate starts the exam when its recorder starts (the attempts were made
        beforehand, with their tokens): the recording then spans the attempt, as in a browser."""
        with session_scope() as db:
            for b in self.browsers:
                attempt = db.get(Attempt, b.attempt_id)
                attempt.deadline_at = self.started_at(b) + (attempt.deadline_at - attempt.started_at)
                attempt.started_at = self.started_at(b)
                db.add(attempt)

    def minute(self) -> int:
        return int((time.monotonic() - self.started) // 60)

    def schedule(self, b: Browser) -> list[tuple[float, str]]:
        """When one browser queues what: each chunk of the recording at its end, snapshots and
        events from random phases, until the recording ends."""
        start = self.started + b.phase
        end = start + len(self.pieces) * self.every["chunk"]
        due = [(start + (n + 1) * self.every["chunk"], "chunk") for n in range(len(self.pieces))]
        for kind in ("snapshot", "event"):
            at = start + random.uniform(0, self.every[kind])
            due += [(at + n * self.every[kind], kind) for n in range(int(1 + max(0.0, end - at) // self.every[kind]))
                    if at + n * self.every[kind] < end]
        return sorted(due)

    async def produce(self, b: Browser) -> None:
        """The recorder, the snapshot timer and the page's event listeners."""
        for at, kind in self.schedule(b):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            self.lags.append(time.monotonic() - at)
            n = b.queued[kind]
            b.queued[kind] += 1
            now_ms = int(time.time() * 1000)
            auth = {"Authorization": f"Bearer {b.token}"}
            if kind == "chunk":
                start_ms = round((self.started_wall + b.phase + n * self.every["chunk"]) * 1000)
                b.items.append((kind, n, f"/api/attempts/{b.attempt_id}/streams/camera/segments/0/chunks/{n}",
                                auth | {"Content-Type": MIME, "X-Content-SHA256": self.piece_shas[n],
                                        "X-Chunk-Start-Ms": str(start_ms),
                                        "X-Chunk-End-Ms": str(start_ms + round(self.every["chunk"] * 1000))},
                                self.pieces[n]))
            elif kind == "snapshot":
                b.items.append((kind, n, f"/api/attempts/{b.attempt_id}/snapshots/{n}",
                                auth | {"Content-Type": "image/jpeg", "X-Content-SHA256": self.snapshot_sha,
                                        "X-Taken-Ms": str(now_ms)}, self.snapshot))
            else:
                b.events += [{"id": f"e{n}-{i}", "kind": random.choice(EVENT_KINDS), "at": now_ms, "data": {}}
                             for i in range(EVENTS_AT_ONCE)]
            b.wake.set()
        b.producing = False
        b.wake.set()

    async def try_once(self, b: Browser, kind: str, method: str, path: str, headers: dict, body: bytes) -> bool:
        sent, minute = time.perf_counter(), self.minute()
        try:
            status = await asyncio.wait_for(b.client.send(method, path, headers, body), REQUEST_TIMEOUT_S)
        except (LoopbackClient.Failed, TimeoutError) as exc:
            failure = f"{kind} {type(exc).__name__}"
        else:
            if status in (200, 201):
                self.latencies.append((minute, time.perf_counter() - sent))
                return True
            failure = f"{kind} {status}"
        self.failures[failure] = self.failures.get(failure, 0) + 1
        return False

    async def send(self, b: Browser) -> None:
        """The upload queue: one request at a time, events batched; what fails goes to the back
        and is sent again after the backoff."""
        failures, last_events = 0, 0.0
        while b.producing or b.items or b.events:
            events_due = b.events and (not b.items or time.monotonic() - last_events >= EVENT_BATCH_S)
            if not events_due and not b.items:
                b.wake.clear()
                await b.wake.wait()
                continue
            if events_due:
                batch = b.events[:100]
                last_events = time.monotonic()
                ok = await self.try_once(b, "events", "POST", f"/api/attempts/{b.attempt_id}/events",
                                         {"Authorization": f"Bearer {b.token}", "Content-Type": "application/json"},
                                         json.dumps({"events": batch}).encode())
                if ok:
                    del b.events[:len(batch)]
                    b.acked["event"].update(e["id"] for e in batch)
            else:
                kind, n, path, headers, body = item = b.items[0]
                ok = await self.try_once(b, kind, "PUT", path, headers, body)
                b.items.remove(item)
                if ok:
                    b.acked[kind].add(n)
                else:
                    b.items.append(item)  # one that keeps failing does not hold up the rest
            if ok:
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(backoff_s(failures))

    async def run(self, drain_s: float) -> int:
        """The load until every recording ended, then until every queue is empty or `drain_s`
        passed; returns the browsers whose queue still held something."""
        await asyncio.to_thread(self.start_exams)
        end = self.started + self.every["chunk"] * (len(self.pieces) + 1)
        producers = [asyncio.create_task(self.produce(b)) for b in self.browsers]
        senders = [asyncio.create_task(self.send(b)) for b in self.browsers]
        await asyncio.gather(*producers)
        _, pending = await asyncio.wait(senders, timeout=max(0.0, end - time.monotonic()) + drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)

    def close(self) -> None:
        for b in self.browsers:
            b.client.close()


class Grid:
    """The live candidates publishing their tile, and proctors each watching every tile."""

    def __init__(self, base_url: str, tile: list[bytes], publishers: list[Browser], proctor_cookies: list[str]):
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60)
        self.tile, self.publishers, self.cookies = tile, publishers, proctor_cookies
        self.peers: list[tuple[Publisher | Viewer, str, dict]] = []  # (peer, Location, credentials)
        self.viewers: list[Viewer] = []
        self.counted_from: list[int] = []
        self.counting_since = 0.0

    async def _open(self, peer, url: str, credentials: dict) -> None:
        location = {}

        async def signal(offer: str) -> str:
            response = await self.http.post(url, content=offer,
                                            headers=credentials | {"Content-Type": "application/sdp"})
            if response.status_code != 201:
                raise RuntimeError(f"refused: {url}: {response.status_code} {response.text[:200]}")
            location["url"] = response.headers["location"]
            return response.text

        await peer.start(signal)
        self.peers.append((peer, location["url"], credentials))

    async def start(self) -> None:
        for b in self.publishers:
            await self._open(Publisher({LIVE_STREAM: EncodedSource(self.tile, TILE_FPS)}),
                             f"/api/live/attempts/{b.attempt_id}/publish?streams={LIVE_STREAM}",
                             {"Authorization": f"Bearer {b.token}"})
        for cookie in self.cookies:
            for b in self.publishers:
                viewer = Viewer(decode=False)
                await self._open(viewer, f"/api/live/attempts/{b.attempt_id}/streams/{LIVE_STREAM}/view",
                                 {"Cookie": f"{SESSION_COOKIE}={cookie}"})
                self.viewers.append(viewer)

    def count_from_now(self) -> None:
        self.counted_from = [v.count for v in self.viewers]
        self.counting_since = time.monotonic()

    def delivered(self) -> list[float]:
        """Each viewer's share of the tile's frames since count_from_now."""
        elapsed = time.monotonic() - self.counting_since
        return [(v.count - c) / (TILE_FPS * elapsed) for v, c in zip(self.viewers, self.counted_from)]

    async def close(self) -> None:
        """Each session ended as the pages do (DELETE its Location), viewers first."""
        for peer, location, credentials in reversed(self.peers):
            await self.http.delete(location, headers=credentials)
            await peer.close()
        await self.http.aclose()


class Watch:
    """Samples of the server every SAMPLE_S: RSS and open descriptors of each of its processes,
    the database's size; the storage folder's every STORAGE_SAMPLE_S (a walk of every file)."""

    def __init__(self, server: subprocess.Popen):
        self.server = server
        self.samples: list[dict] = []  # {"t": minutes, "rss": {role: bytes}, "fds": {role: n}, "db": bytes}
        self.storage: list[tuple[float, int]] = []
        self.started = time.monotonic()

    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def sample(self) -> None:
        rss, fds = {}, {}
        for role, process in server_processes(self.server).items():
            try:
                rss[role], fds[role] = process.memory_info().rss, process.num_fds()
            except Exception:  # the process ended between listing and reading (it shows as missing)
                continue
        db = sum(p.stat().st_size for p in Path(DATA.name).glob("proctor.db*"))
        self.samples.append({"t": self.minutes(), "rss": rss, "fds": fds, "db": db})

    async def run(self) -> None:
        next_storage = 0.0
        while True:
            self.sample()
            if time.monotonic() >= next_storage:
                next_storage = time.monotonic() + STORAGE_SAMPLE_S
                self.storage.append((self.minutes(), await asyncio.to_thread(folder_bytes, config.storage_dir)))
            await asyncio.sleep(SAMPLE_S)


def folder_bytes(folder: Path) -> int:
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(path, name)).st_size
            except FileNotFoundError:  # a temporary file renamed meanwhile
                pass
    return total


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least squares: the change per minute of y over t (minutes)."""
    if len(points) < 3:
        return float("nan")
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else float("nan")


def recording_pieces(seconds: float, interval: float, bitrate_kbps: int) -> list[bytes]:
    """One browser's camera recording (H.264 in live Matroska), cut as the recorder hands it over."""
    path = Path(DATA.name) / "camera.mkv"
    samples.encode(path, seconds, "h264", size=SIZE, fps=FPS, keyframe_s=2.0, bitrate_kbps=bitrate_kbps)
    return samples.cut(path.read_bytes(), seconds, chunk_s=interval)


def snapshot_jpeg() -> bytes:
    path = Path(DATA.name) / "snapshot.jpg"
    subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=s={SIZE[0]}x{SIZE[1]}",
                    "-frames:v", "1", "-q:v", "5", "-y", str(path)], check=True)
    return path.read_bytes()


def proctor_cookies(exam_id: int, count: int) -> list[str]:
    """Login sessions of `count` proctors assigned to the exam."""
    emails = []
    with session_scope() as db:
        for _ in range(count):
            proctor = make_user(db, role=Role.proctor, password=PROCTOR_PASSWORD)
            assign(db, exam_id, proctor)
            emails.append(proctor.email)
    return [sessions.login(email, PROCTOR_PASSWORD)[0] for email in emails]


def missing(browsers: list[Browser], pieces: list[bytes], snapshot: bytes) -> dict[str, int]:
    """Acknowledged uploads that are not in the database or on disk (every tenth chunk file read
    back and hashed, the others' sizes checked), or never acknowledged."""
    shas = [hashlib.sha256(p).hexdigest() for p in pieces]
    ids = [b.attempt_id for b in browsers]
    with session_scope() as db:
        chunks = {(a, seq): (size, sha, path) for a, seq, size, sha, path in db.exec(
            select(Recording.attempt_id, Chunk.seq, Chunk.size, Chunk.sha256, Chunk.path)
            .join(Segment, Segment.recording_id == Recording.id).join(Chunk, Chunk.segment_id == Segment.id)
            .where(Recording.attempt_id.in_(ids), Recording.stream == "camera", Segment.number == 0))}
        stills = {(a, seq): path for a, seq, path in db.exec(
            select(Snapshot.attempt_id, Snapshot.seq, Snapshot.path).where(Snapshot.attempt_id.in_(ids)))}
        events = {(a, cid) for a, cid in db.exec(
            select(ProctoringEvent.attempt_id, ProctoringEvent.client_id)
            .where(ProctoringEvent.attempt_id.in_(ids), ProctoringEvent.client_id.is_not(None)))}
    lost = {"chunks": 0, "snapshots": 0, "events": 0}
    for b in browsers:
        lost["chunks"] += b.queued["chunk"] - len(b.acked["chunk"])
        lost["snapshots"] += b.queued["snapshot"] - len(b.acked["snapshot"])
        lost["events"] += b.queued["event"] * EVENTS_AT_ONCE - len(b.acked["event"])
        for seq in b.acked["chunk"]:
            row = chunks.get((b.attempt_id, seq))
            if row is None or row[0] != len(pieces[seq]) or row[1] != shas[seq]:
                lost["chunks"] += 1
            elif seq % 10 == 0:
                lost["chunks"] += hashlib.sha256(storage.absolute(row[2]).read_bytes()).hexdigest() != row[1]
            else:
                lost["chunks"] += storage.absolute(row[2]).stat().st_size != row[0]
        for seq in b.acked["snapshot"]:
            path = stills.get((b.attempt_id, seq))
            lost["snapshots"] += path is None or storage.absolute(path).read_bytes() != snapshot
        lost["events"] += sum((b.attempt_id, cid) not in events for cid in b.acked["event"])
    return lost


async def submit_all(load: Load) -> None:
    """Every attempt submitted (as the exam page does) when its recording ended, then its browser
    reports its queue flushed. (Submitted after the lost uploads were counted, since processing
    deletes the raw chunks, but ended when the candidate stopped: the recording spans the attempt.)"""
    by_id = {b.attempt_id: b for b in load.browsers}
    ids = list(by_id)
    for start in range(0, len(ids), 100):
        with session_scope() as db:
            for attempt in db.exec(select(Attempt).where(Attempt.id.in_(ids[start:start + 100]))):
                attempts.submit(db, attempt, now=load.ended_at(by_id[attempt.id]))
    for b in load.browsers:
        b.events.append({"id": "flushed", "kind": "uploads_flushed", "at": int(time.time() * 1000), "data": {}})
        b.producing = False
    await asyncio.gather(*(load.send(b) for b in load.browsers))


def job_counts(ids: list[int]) -> dict[str, int]:
    with session_scope() as db:
        rows = db.exec(select(Job.status, func.count()).where(Job.attempt_id.in_(ids)).group_by(Job.status)).all()
    return {status: n for status, n in rows}


async def processing(ids: list[int], timeout_s: float) -> tuple[dict[str, int], float]:
    """Waits until none of the attempts' jobs is queued or running (at most `timeout_s`)."""
    started = time.monotonic()
    while True:
        counts = await asyncio.to_thread(job_counts, ids)
        left = counts.get(JobStatus.queued, 0) + counts.get(JobStatus.running, 0)
        if not left or time.monotonic() - started > timeout_s:
            return counts, time.monotonic() - started
        await asyncio.sleep(2)


def per_minute(values: list[tuple[int, float]], minutes: int) -> list[float | None]:
    out = []
    for m in range(minutes):
        of_minute = [v for minute, v in values if minute == m]
        out.append(round(percentile(of_minute, 0.99) * 1000, 1) if of_minute else None)
    return out


async def soak(args, port: int, browsers: list[Browser], live: list[Browser], cookies: list[str],
               pieces: list[bytes], snapshot: bytes, tile: list[bytes], server: subprocess.Popen) -> dict:
    watch = Watch(server)
    watching = asyncio.create_task(watch.run())
    grid = Grid(f"http://127.0.0.1:{port}", tile, live, cookies)
    await grid.start()
    grid.count_from_now()
    load = Load(port, browsers, pieces, snapshot, args.interval, args.snapshot_every, args.events_every)
    try:
        unfinished = await load.run(args.drain_s)
        latencies = list(load.latencies)  # of the load, not of the submits after it
        delivered = grid.delivered()
        load_ended = watch.minutes()
    finally:
        await grid.close()
    lost = await asyncio.to_thread(missing, browsers, pieces, snapshot)
    await submit_all(load)
    load.close()
    jobs, processing_s = await processing([b.attempt_id for b in browsers], args.processing_timeout_s)
    watch.sample()
    watching.cancel()
    return {"load": load, "latencies": latencies, "watch": watch, "lost": lost, "unfinished": unfinished, "delivered": delivered,
            "load_ended_min": load_ended, "jobs": jobs, "processing_s": processing_s,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between a candidate's chunks")
    parser.add_argument("--bitrate-kbps", type=int, default=600, help="the camera recording's video bitrate")
    parser.add_argument("--snapshot-every", type=float, default=30.0, help="seconds between snapshots")
    parser.add_argument("--events-every", type=float, default=20.0, help="seconds between proctoring events")
    parser.add_argument("--live-share", type=float, default=0.02, help="share of candidates publishing live")
    parser.add_argument("--viewers", type=int, default=1, help="proctors, each watching every live tile")
    parser.add_argument("--warmup", type=float, default=None,
                        help="minutes left out of the slopes (default: a quarter of the run, at least 0.5)")
    parser.add_argument("--drain-s", type=float, default=60.0, help="seconds allowed to empty the queues")
    parser.add_argument("--processing-concurrency", type=int, default=2, help="the admin setting")
    parser.add_argument("--processing-timeout-s", type=float, default=1800.0)
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else max(0.5, args.minutes / 4)
    n_live = round(args.candidates * args.live_share)

    t0 = time.monotonic()
    _, grants = setup_attempts(args.candidates - n_live, "Soak")
    live_exam, live_grants = setup_attempts(n_live, "Soak live", live_video=True)
    cookies = proctor_cookies(live_exam, args.viewers) if n_live else []
    with session_scope() as db:
        update_settings(db, {"processing_concurrency": args.processing_concurrency}, None)
    pieces = recording_pieces(args.minutes * 60, args.interval, args.bitrate_kbps)
    snapshot = snapshot_jpeg()
    tile = encode_clip(160, 120, TILE_FPS, seconds=2, bitrate_k=150)
    print(f"setup: {args.candidates} attempts ({n_live} live, {args.viewers} proctors watching), a recording of "
          f"{len(pieces)} chunks of {len(pieces[0])} B, a {len(snapshot)} B snapshot "
          f"({time.monotonic() - t0:.1f} s)", flush=True)

    port = free_port()
    server = start_server(port)
    load_before = os.getloadavg()[0]
    try:
        browsers = [Browser(a, token) for a, token in live_grants + grants]
        result = asyncio.run(soak(args, port, browsers, browsers[:n_live], cookies, pieces, snapshot, tile, server))
    finally:
        stop_server(server)
    report(args, result, warmup, n_live, load_before)


def report(args, r: dict, warmup: float, n_live: int, load_before: float) -> None:
    load, watch = r["load"], r["watch"]
    minutes = int(-(-args.minutes // 1))
    p99_by_minute = per_minute(r["latencies"], minutes)
    roles = sorted({role for s in watch.samples for role in s["rss"]})
    steady = [s for s in watch.samples if warmup <= s["t"] <= r["load_ended_min"]]

    def series(key: str, role: str | None = None) -> list[tuple[float, float]]:
        return [(s["t"], sum(s[key].values()) if role is None else s[key].get(role, 0)) for s in steady]

    rss_slope = slope_per_minute(series("rss")) / 2**20
    fd_slope = slope_per_minute(series("fds"))
    per_role = {role: {"rss_mb_per_min": round(slope_per_minute(series("rss", role)) / 2**20, 2),
                       "fds_per_min": round(slope_per_minute(series("fds", role)), 2)} for role in roles}

    def at_minutes(key: str) -> dict:
        """Each process's figure at the end of every minute (the sample nearest to it), and the last."""
        marks = [*range(1, int(watch.minutes()) + 1), watch.minutes()]
        picked = [min(watch.samples, key=lambda s: abs(s["t"] - m)) for m in marks]
        scale = 2**20 if key == "rss" else 1
        return {role: [round(s[key].get(role, 0) / scale, 1) for s in picked] for role in roles}

    rss, fds = at_minutes("rss"), at_minutes("fds")
    jobs = r["jobs"]
    left = jobs.get(JobStatus.queued, 0) + jobs.get(JobStatus.running, 0)
    failed = jobs.get(JobStatus.failed, 0)
    lost = r["lost"]
    latencies = [v for _, v in r["latencies"]]
    acked = {kind: sum(len(b.acked[kind]) for b in load.browsers) for kind in ("chunk", "snapshot", "event")}
    rss_flat, fds_flat = rss_slope <= RSS_BOUND_MB_PER_MIN, fd_slope <= FD_BOUND_PER_MIN
    delivered = r["delivered"]
    ok = (not any(lost.values()) and not left and not failed and rss_flat and fds_flat
          and r["unfinished"] == 0)

    print(f"load: {args.candidates} candidates for {args.minutes:g} min, a chunk every {args.interval:g} s, a "
          f"snapshot every {args.snapshot_every:g} s, events every {args.events_every:g} s; {n_live} publishing "
          f"live, {args.viewers} proctor(s) watching each")
    print(f"  acknowledged: {acked['chunk']} chunks, {acked['snapshot']} snapshots, {acked['event']} events; "
          f"lost: {lost['chunks']} chunks, {lost['snapshots']} snapshots, {lost['events']} events; "
          f"queues not empty {args.drain_s:g} s after the end: {r['unfinished']}")
    print(f"  ack latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms; "
          f"p99 per minute (ms): {p99_by_minute}; load generator lag p99 {percentile(load.lags, 0.99) * 1000:.0f} ms")
    print(f"  failed tries (retried): {load.failures or 'none'}")
    if delivered:
        print(f"  live: tile frames delivered per viewer min {min(delivered):.1%}, mean "
              f"{sum(delivered) / len(delivered):.1%}")
    print("  RSS (MB) at the end of each minute, and at the end:")
    for role in roles:
        print(f"    {role:9} {rss[role]}  ({per_role[role]['rss_mb_per_min']:+.2f} MB/min after warm-up)")
    print("  open descriptors at the end of each minute, and at the end:")
    for role in roles:
        print(f"    {role:9} {fds[role]}  ({per_role[role]['fds_per_min']:+.2f}/min after warm-up)")
    db_mb = [round(s["db"] / 2**20, 1) for s in watch.samples[::max(1, int(60 / SAMPLE_S))]]
    print(f"  database (MB, each minute): {db_mb}; storage (MB, each minute): "
          f"{[round(b / 2**20, 1) for _, b in watch.storage]}")
    print(f"  slopes after the {warmup:g}-minute warm-up (least squares over {len(steady)} samples): whole "
          f"server RSS {rss_slope:+.2f} MB/min (bound {RSS_BOUND_MB_PER_MIN}), descriptors {fd_slope:+.2f}/min "
          f"(bound {FD_BOUND_PER_MIN}): {'flat' if rss_flat and fds_flat else 'GROWING'}")
    print(f"  processing after submit: jobs {dict(jobs)}, {left} left, {failed} failed, {r['processing_s']:.0f} s")
    print(f"  machine load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
          f"on {os.cpu_count()} cores")
    print(json.dumps({
        "candidates": args.candidates, "minutes": args.minutes, "interval_s": args.interval,
        "live_publishers": n_live, "viewers": args.viewers, "chunk_bytes": len(r["load"].pieces[0]),
        "acknowledged": acked, "lost": lost, "unfinished_queues": r["unfinished"],
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1), "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "p99_ms_by_minute": p99_by_minute, "failed_tries": load.failures,
        "load_generator_lag_p99_ms": round(percentile(load.lags, 0.99) * 1000, 1),
        "live_delivered_min": round(min(delivered), 3) if delivered else None,
        "rss_mb_by_minute": rss, "fds_by_minute": fds,
        "db_mb_by_minute": db_mb, "storage_mb_by_minute": [round(b / 2**20, 1) for _, b in r["watch"].storage],
        "warmup_min": warmup, "rss_mb_per_min": round(rss_slope, 3), "fds_per_min": round(fd_slope, 3),
        "slopes_by_process": per_role, "rss_bound_mb_per_min": RSS_BOUND_MB_PER_MIN,
        "fd_bound_per_min": FD_BOUND_PER_MIN, "flat": rss_flat and fds_flat,
        "jobs": dict(jobs), "jobs_left": left, "jobs_failed": failed,
        "processing_s": round(r["processing_s"], 1),
        "load_average_1m_before": round(load_before, 2), "load_average_1m_after": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(), "ok": ok,
    }))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
