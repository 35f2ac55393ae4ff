"""The server under load, shared by the benches that drive it over HTTP (ingest, soak): a private
data folder, attempts in progress with upload tokens, the real server started as production does
(granian with the app, its ingest processes, relay processes and job worker as runtime.py composes
them; without the static frontend), its processes, and a cheap loopback HTTP client.

Importing this module points the app's configuration at a private temporary folder, so import it
before anything from proctor_app.
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = tempfile.TemporaryDirectory(prefix="bench-")
os.environ["PROCTOR_DATA_DIR"] = DATA.name  # before proctor_app reads its configuration
os.environ.pop("PROCTOR_DATABASE_URL", None)
os.environ.pop("PROCTOR_STORAGE_DIR", None)

import httpx  # noqa: E402
import psutil  # noqa: E402

from proctor_app.db import migrate, session_scope  # noqa: E402
from proctor_app.models import utcnow  # noqa: E402
from proctor_app.services import attempts  # noqa: E402
from proctor_app.services.uploads import issue_upload_token  # noqa: E402
from tests.support.factories import make_attempt, make_exam, make_user  # noqa: E402

SERVER_LOG = Path(DATA.name) / "server.log"


class LoopbackClient:
    """A minimal HTTP/1.1 client with a pool of keep-alive connections. httpx's pool costs more
    CPU per request than the server's whole ingest path, so with it the bench measured the client."""

    class Failed(Exception):
        pass

    def __init__(self, port: int, connections: int):
        self.port = port
        self.idle: asyncio.Queue = asyncio.Queue()
        self.slots = asyncio.Semaphore(connections)

    async def send(self, method: str, path: str, headers: dict, body: bytes) -> int:
        """The answer's status (its body is read and dropped)."""
        async with self.slots:
            try:
                reader, writer = self.idle.get_nowait()
            except asyncio.QueueEmpty:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                             .encode() + body)
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                length, closing = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        closing = True
                await reader.readexactly(length)
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
                writer.close()
                raise self.Failed(type(exc).__name__) from exc
            except asyncio.CancelledError:  # given up on (a timeout): the connection is in no known state
                writer.close()
                raise
            if closing:  # the server refused before reading the body (503, 401...)
                writer.close()
            else:
                self.idle.put_nowait((reader, writer))
            return status

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


def setup_attempts(count: int, title: str, **exam_fields) -> tuple[int, list[tuple[int, str]]]:
    """`count` candidates with an attempt in progress each on one new exam (`exam_fields` over
    recording on, no live video, 120 minutes); returns the exam's id and (attempt id, upload
    token) per candidate."""
    migrate()
    grants = []
    fields = {"recording": True, "live_video": False, "duration_minutes": 120} | exam_fields
    with session_scope() as db:
        exam = make_exam(db, title=title, **fields)
        tag = exam.id
        for i in range(count):
            user = make_user(db, email=f"bench-{tag}-{i}@example.com", name=f"Bench {tag} {i}",
                             password_hash="not-used")
            attempt = make_attempt(db, exam, user, consent_at=utcnow())
            attempts.start(db, attempt, 0)
            grant = issue_upload_token(db, attempt)
            grants.append((grant.attempt_id, grant.token))
        return exam.id, grants


def start_server(port: int, redis_url: str | None = None) -> subprocess.Popen:
    """With a Redis URL Reflex runs several worker processes (its production setup), else one."""
    env = dict(os.environ, REFLEX_SKIP_COMPILE="true", REFLEX_TELEMETRY_ENABLED="false",
               REFLEX_STATES_WORKDIR=str(Path(DATA.name) / "states"), REFLEX_USE_SYSTEM_BUN="1",
               REFLEX_WEB_WORKDIR=str(Path(DATA.name) / "web"), PROCTOR_PORT=str(port),
               PATH=f"{ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("REFLEX_REDIS_URL", None)
    if redis_url:
        env["REFLEX_REDIS_URL"] = redis_url
    code = ("from reflex.utils.exec import run_granian_backend_prod\n"
            "from reflex_base.constants import LogLevel\n"
            f"run_granian_backend_prod('127.0.0.1', {port}, LogLevel.WARNING)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(SERVER_LOG, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited: " + SERVER_LOG.read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError("the server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def server_processes(proc: subprocess.Popen) -> dict[str, psutil.Process]:
    """The server's long-lived processes by role: "server" (granian's main process), "app N" (its
    workers: the routes, the job worker), "ingest N", "relay N", "background N" (grow steps; started
    by the workers). What else runs for a while (ffmpeg of a job) is left out."""
    root = psutil.Process(proc.pid)
    found = {"server": root}
    counts: dict[str, int] = {}
    workers = root.children()
    for n, worker in enumerate(workers, 1):
        found[f"app {n}"] = worker
    for worker in workers:
        for child in worker.children():
            try:
                command = child.cmdline()
            except psutil.NoSuchProcess:  # a job's child that just ended
                continue
            if "proctor_app.runtime" in command:
                role = command[command.index("proctor_app.runtime") + 1]
            elif any("spawn_main" in part for part in command):  # media/jobs/background.py
                role = "background"
            else:
                continue
            counts[role] = counts.get(role, 0) + 1
            found[f"{role} {counts[role]}"] = child
    return found


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]
