"""Live relays in processes of their own, beside the app's, shared by every app worker.

A publisher and its viewers must meet in one relay. So an attempt belongs to relay process
`attempt_id % count`, whichever app worker takes its requests: each worker (RelayPool) connects to
every relay process over a Unix socket in `folder` and forwards the WHIP/WHEP offers and DELETEs of
an attempt to its relay, and "close the sessions of ..." (a revocation) to all of them. Session ids
carry their relay's index ("<index>.<id>"), so a DELETE finds its relay too.

Messages are JSON lines. Requests {"id", "op", "args"} are answered {"id", "result"} or {"id",
"error": [status, message]}; a relay also pushes {"state": {"attempts": {id: [status, changed_at,
streams]}, "counts": {role: n}}} to every worker whenever a status or a count changed, so pages
read statuses in memory (`snapshot`) and await changes (`wait_for_change`) without asking.

Relay process `index` holds the lock `relay-<index>.lock` in `folder` while it lives: a worker that
finds no relay to connect to takes the lock and hands it to the relay process it starts, so of
the workers that all find it missing only one starts it (the others connect once it is up). A
relay ends when its stdin closes, so it never outlives the worker that started it; a relay that
died (or whose worker did) is started again by the workers' supervisors within a second, its
sessions are gone, and the browsers' reconnect loops publish and view again (503 meanwhile).
"""

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from proctor_app.media.live.offers import LiveRequestError
from proctor_app.media.live.relay import LiveRelay
from proctor_app.media.live.status import OFFLINE, Changes, LiveSnapshot, LiveStatus
from proctor_app.platform import lock_for_child

log = logging.getLogger("proctor_app.live")
READY = b"ready\n"
START_TIMEOUT_S = 60
SUPERVISE_INTERVAL_S = 0.5
# A relay pushes its session counts at least this often (statuses at once).
PUSH_INTERVAL_S = 1.0
# A Unix socket's path has room for about 107 bytes.
MAX_SOCKET_PATH = 100
# The longest message line: a state push of thousands of attempts, an offer (64 KiB) escaped.
MAX_LINE = 16 * 1024 * 1024
UNAVAILABLE = "Live video is restarting on the server; try again in a moment."


def pooled_session_id(index: int, session_id: str) -> str:
    """A relay process's session id as the workers (and the audit log) know it."""
    return f"{index}.{session_id}"


def lock_path(folder: Path, index: int) -> Path:
    return folder / f"relay-{index}.lock"


def socket_path(folder: Path, index: int) -> Path:
    return folder / f"relay-{index}.sock"


# ---------------------------------------------------------------------------------------------
# The relay process


def _state(relay: LiveRelay) -> dict:
    return {"attempts": {str(attempt_id): [s.status, s.changed_at, list(s.streams)]
                         for attempt_id, s in relay.snapshots().items()},
            "counts": relay.session_counts()}


def _send(writer: asyncio.StreamWriter, message: dict) -> None:
    if not writer.is_closing():
        writer.write(json.dumps(message).encode() + b"\n")


async def _push_state(relay: LiveRelay, writer: asyncio.StreamWriter) -> None:
    sent = None
    while not writer.is_closing():
        version = relay.version
        state = _state(relay)
        if state != sent:
            _send(writer, {"state": state})
            sent = state
        await relay.wait_for_change(version, PUSH_INTERVAL_S)


async def _answer(relay: LiveRelay, writer: asyncio.StreamWriter, request: dict) -> None:
    ops: dict[str, Callable[..., Awaitable]] = {
        "publish": relay.publish, "view": relay.view, "session_owner": relay.session_owner,
        "end": relay.end, "close_sessions": relay.close_sessions}
    try:
        result = await ops[request["op"]](**request["args"])
        _send(writer, {"id": request["id"], "result": result})
    except LiveRequestError as exc:
        _send(writer, {"id": request["id"], "error": [exc.status, str(exc)]})
    except Exception:
        log.exception("live relay request %s failed", request.get("op"))
        _send(writer, {"id": request["id"], "error": [500, "The live relay failed on this request."]})


class _Workers:
    """The app workers' connections to this relay process."""

    def __init__(self, relay: LiveRelay):
        self.relay = relay
        self.connections: dict[asyncio.StreamWriter, asyncio.Task] = {}
        self.answers: set[asyncio.Task] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One app worker's connection: its requests, answered as they complete, and the pushes."""
        self.connections[writer] = asyncio.current_task()
        pushing = asyncio.create_task(_push_state(self.relay, writer))
        try:
            while line := await reader.readline():
                # Side by side: an answer waits for ICE gathering, others need not wait for it.
                task = asyncio.create_task(_answer(self.relay, writer, json.loads(line)))
                self.answers.add(task)
                task.add_done_callback(self.answers.discard)
        except (ConnectionError, ValueError):
            pass
        finally:
            pushing.cancel()
            writer.close()
            del self.connections[writer]

    async def close(self) -> None:
        # Each connection's reading ends (at EOF) rather than being cancelled.
        for writer in list(self.connections):
            writer.close()
        await asyncio.gather(*self.connections.values(), return_exceptions=True)
        for task in self.answers:
            task.cancel()


async def _stdin_closed() -> None:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                       sys.stdin)
    while await reader.read(4096):
        pass


async def serve(index: int, folder: Path, relay: LiveRelay) -> None:
    """Relay process `index` (started holding its lock): serve the app workers on its socket in
    `folder` until stdin closes."""
    path = socket_path(folder, index)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead relay's
    workers = _Workers(relay)
    server = await asyncio.start_unix_server(workers.serve, path, limit=MAX_LINE)
    os.write(1, READY)
    os.dup2(2, 1)  # nobody reads stdout after this: prints go to the log
    try:
        await _stdin_closed()
    finally:
        server.close()
        await workers.close()
        await relay.close()


# ---------------------------------------------------------------------------------------------
# The app worker's side


class RelayConnection:
    """An app worker's connection to one relay process, and the statuses that relay pushed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_change: Callable[[], None]):
        self.reader, self.writer, self.on_change = reader, writer, on_change
        self.snapshots: dict[int, LiveSnapshot] = {}
        self.counts = {"publish": 0, "view": 0}
        self.alive = True
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future] = {}
        self._reading = asyncio.create_task(self._read())

    async def ask(self, op: str, **args):
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            self.writer.write(json.dumps({"id": request_id, "op": op, "args": args}).encode() + b"\n")
            await self.writer.drain()
            message = await answer
        except ConnectionError:
            raise LiveRequestError(UNAVAILABLE, 503) from None
        finally:
            self._waiting.pop(request_id, None)
        if "error" in message:
            status, text = message["error"]
            raise LiveRequestError(text, status)
        return message["result"]

    async def _read(self) -> None:
        try:
            while line := await self.reader.readline():
                message = json.loads(line)
                if "state" in message:
                    self._take_state(message["state"])
                elif (answer := self._waiting.get(message["id"])) is not None and not answer.done():
                    answer.set_result(message)
        except (ConnectionError, ValueError):
            pass
        finally:
            self.alive = False
            self.writer.close()
            for answer in self._waiting.values():
                if not answer.done():
                    answer.set_result({"error": [503, UNAVAILABLE]})
            # Its sessions ended with it: what it served is offline until published again.
            self.snapshots = {}
            self.counts = {"publish": 0, "view": 0}
            self.on_change()

    def _take_state(self, state: dict) -> None:
        self.counts = state["counts"]
        snapshots = {int(attempt_id): LiveSnapshot(LiveStatus(status), changed_at, tuple(streams))
                     for attempt_id, (status, changed_at, streams) in state["attempts"].items()}
        if snapshots != self.snapshots:
            self.snapshots = snapshots
            self.on_change()

    async def close(self) -> None:
        self.writer.close()
        self._reading.cancel()
        await asyncio.gather(self._reading, return_exceptions=True)


class RelayPool:
    """The relay processes as one relay, for an app worker: the same calls as LiveRelay.
    `command` + [index, folder] starts a process that calls `serve`."""

    def __init__(self, count: int, folder: Path, command: list[str]):
        self.count, self.folder, self.command = count, Path(folder), command
        self._connections: dict[int, RelayConnection] = {}
        self._children: list[asyncio.subprocess.Process] = []
        self._changes = Changes()
        self._supervisor: asyncio.Task | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Connect to every relay process, starting those missing; then keep them so."""
        if len(str(socket_path(self.folder, self.count))) > MAX_SOCKET_PATH:
            raise RuntimeError(f"the live relays' folder {self.folder} is too long a path for Unix sockets")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with asyncio.timeout(START_TIMEOUT_S):
            while missing := self._missing():
                await asyncio.gather(*(self._connect_or_start(index) for index in missing))
                if self._missing():
                    await asyncio.sleep(SUPERVISE_INTERVAL_S)  # one is starting (another worker's)
        self._supervisor = asyncio.create_task(self._supervise())

    def _missing(self) -> list[int]:
        return [index for index in range(self.count)
                if index not in self._connections or not self._connections[index].alive]

    async def _connect_or_start(self, index: int) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path(self.folder, index)),
                                                                limit=MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            await self._start_process(index)
            return
        self._connections[index] = RelayConnection(reader, writer, self._connection_changed)

    async def _start_process(self, index: int) -> None:
        """Start relay `index`, unless a process has its lock: one alive, perhaps still starting."""
        lock = lock_for_child(lock_path(self.folder, index))
        if lock is None:
            return
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command, str(index), str(self.folder), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, pass_fds=(lock,))
        finally:
            os.close(lock)  # the relay holds it now
        try:
            said = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            said = b""
        if said != READY:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise RuntimeError(f"live relay process {index} did not start (exit code {await process.wait()}); "
                               "its error is in the app's log")
        self._children.append(process)
        log.info("live relay process %s started (pid %s)", index, process.pid)
        # Connected to in the next round.

    def _connection_changed(self) -> None:
        self._changes.bump()
        self._wake.set()

    async def _supervise(self) -> None:
        while True:
            self._children = [p for p in self._children if p.returncode is None]
            for index in self._missing():
                try:
                    await self._connect_or_start(index)
                except Exception:  # keep trying; the others go on relaying meanwhile
                    log.exception("live relay process %s could not be started", index)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SUPERVISE_INTERVAL_S):
                    await self._wake.wait()

    def _for(self, index: int) -> RelayConnection:
        connection = self._connections.get(index)
        if connection is None or not connection.alive:
            raise LiveRequestError(UNAVAILABLE, 503)
        return connection

    @staticmethod
    def _split(session_id: str) -> tuple[int, str] | None:
        index, _, own_id = session_id.partition(".")
        return (int(index), own_id) if index.isascii() and index.isdigit() and len(index) < 4 else None

    # -- LiveRelay's calls ------------------------------------------------------------------

    async def publish(self, attempt_id: int, owner: str, offer_sdp: str, streams: list[str],
                      allow_audio: bool = True) -> tuple[str, str]:
        index = attempt_id % self.count
        session_id, answer = await self._for(index).ask(
            "publish", attempt_id=attempt_id, owner=owner, offer_sdp=offer_sdp, streams=streams,
            allow_audio=allow_audio)
        return pooled_session_id(index, session_id), answer

    async def view(self, attempt_id: int, stream: str, owner: str, offer_sdp: str) -> tuple[str, str]:
        index = attempt_id % self.count
        session_id, answer = await self._for(index).ask(
            "view", attempt_id=attempt_id, stream=stream, owner=owner, offer_sdp=offer_sdp)
        return pooled_session_id(index, session_id), answer

    async def session_owner(self, session_id: str) -> str | None:
        split = self._split(session_id)
        if split is None or split[0] >= self.count:
            return None
        return await self._for(split[0]).ask("session_owner", session_id=split[1])

    async def end(self, session_id: str) -> bool:
        split = self._split(session_id)
        if split is None or split[0] >= self.count:
            return False
        return await self._for(split[0]).ask("end", session_id=split[1])

    async def close_sessions(self, owners: Iterable[str], attempt_ids: Iterable[int] | None = None) -> int:
        """On every relay process (a dead one has no sessions to end)."""
        args = {"owners": sorted(owners), "attempt_ids": None if attempt_ids is None else sorted(attempt_ids)}
        ended = await asyncio.gather(*(c.ask("close_sessions", **args)
                                       for c in self._connections.values() if c.alive),
                                     return_exceptions=True)
        for failure in (e for e in ended if isinstance(e, BaseException)):
            log.error("closing live sessions failed on a relay process: %s", failure)
        return sum(n for n in ended if isinstance(n, int))

    def snapshot(self, attempt_id: int) -> LiveSnapshot:
        connection = self._connections.get(attempt_id % self.count)
        return connection.snapshots.get(attempt_id, OFFLINE) if connection else OFFLINE

    def session_counts(self) -> dict[str, int]:
        """Live sessions by role, on all relay processes."""
        counts = {"publish": 0, "view": 0}
        for connection in self._connections.values():
            for role in counts:
                counts[role] += connection.counts.get(role, 0)
        return counts

    @property
    def version(self) -> int:
        return self._changes.version

    async def wait_for_change(self, version: int, timeout: float) -> int:
        return await self._changes.wait(version, timeout)

    async def close(self) -> None:
        """Disconnect; the relay processes this worker started end (the others' go on)."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        for connection in self._connections.values():
            await connection.close()
        self._connections = {}
        for process in self._children:
            process.stdin.close()
        for process in self._children:
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
        self._children = []
