"""Chunk ingest in processes of its own, beside the app's.

Storing a chunk is Python work (hash, checks, SQL) between system calls (write, fsync, rename)
that each hand the GIL to another thread and back. In the app process that competes with the
web server's own Python for one GIL: one process took at most ~450 chunks/s on two cores, and
under an open stream of uploads fell behind at 333/s. So the app only reads the body and passes
it over a socket pair to one of a few ingest processes, which store it with an UploadStore in
threads and answer; every process has its own GIL, and the cores share the work.

A frame is a fixed header (request id, header length, body length) then a JSON header and the
body: a chunk's header is the list [token, the ChunkUpload's fields but the body, in order]; the
answer is (request id, length) then JSON: {"ack": [the ChunkAck's fields, in order]} or {"error":
[status, code, message]}. A header {"forget": [token hashes]} (no body) drops revoked upload
tokens from the process's cache before it reads the next frame. An ingest process ends when its
socket closes, so it never outlives the app; if it dies, its uploads in flight are answered 503
(the browser sends them again) and a new one starts. A new process says READY once it has
imported what it needs, so the app does not take uploads before it can store them, and one that
cannot start fails the start-up with its reason.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields

from proctor_app.config import PROJECT_ROOT
from proctor_app.logs import current_attempt
from proctor_app.media.ingest.checks import ChunkAck, ChunkUpload
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.store import UploadStore

log = logging.getLogger("proctor_app.ingest")
REQUEST = struct.Struct("!QII")  # request id, header length, body length
ANSWER = struct.Struct("!QI")  # request id, length
READY = b"ready\n"
START_TIMEOUT_S = 60
RESTART_RETRY_S = 2.0
# Chunks one ingest process stores at once: each holds a thread through its fsyncs and the group
# commit of its rows, so more make bigger commit batches.
THREADS_PER_PROCESS = 16
_LOST = [503, "ingest_unavailable", "The server could not store the chunk; send it again."]
# The fields of a chunk's header and of its ack, in the order they are sent (lists of values:
# dataclasses.asdict and astuple deep-copy each one).
_UPLOAD_FIELDS = [f.name for f in fields(ChunkUpload) if f.name != "body"]
_ACK_FIELDS = [f.name for f in fields(ChunkAck)]


class IngestProcess:
    """One ingest process and the app's end of its socket."""

    def __init__(self, process: asyncio.subprocess.Process, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, on_exit: Callable[[], None]):
        self.process, self.reader, self.writer, self.on_exit = process, reader, writer, on_exit
        self.waiting: dict[int, asyncio.Future] = {}
        self.alive = True
        self._ids = itertools.count()
        self._answers = asyncio.create_task(self._read_answers())

    @classmethod
    async def start(cls, command: list[str], on_exit: Callable[[], None]) -> "IngestProcess":
        """A new ingest process, ready to store; `on_exit` is called once it has ended.
        `command` starts a process that calls `serve` on the socket whose descriptor is appended."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                *command, str(theirs.fileno()), pass_fds=(theirs.fileno(),), cwd=PROJECT_ROOT)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            ready = await asyncio.wait_for(reader.readline(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            ready = b""
        if ready != READY:
            writer.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise RuntimeError(f"an ingest process did not start (exit code {await process.wait()}); "
                               "its error is in the app's log")
        return cls(process, reader, writer, on_exit)

    async def _ask(self, header: dict | list, body: bytes = b"") -> dict:
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = answer
        encoded = json.dumps(header).encode()
        self.writer.writelines((REQUEST.pack(request_id, len(encoded), len(body)) + encoded, body))
        try:
            await self.writer.drain()
            return await answer
        except ConnectionError:  # it died while the request was being passed on
            return {"error": _LOST}
        finally:
            self.waiting.pop(request_id, None)

    async def forget_tokens(self, token_hashes: list[str]) -> None:
        """Revoked upload tokens: the process looks them up again before it stores anything more
        with them. Returns once it has (or has died, taking its cache along)."""
        await self._ask({"forget": token_hashes})

    async def store(self, token: str | None, upload: ChunkUpload) -> ChunkAck:
        result = await self._ask([token, *(getattr(upload, name) for name in _UPLOAD_FIELDS)], upload.body)
        if "error" in result:
            raise IngestError(*result["error"])
        return ChunkAck(*result["ack"])

    async def _read_answers(self) -> None:
        try:
            while True:
                request_id, length = ANSWER.unpack(await self.reader.readexactly(ANSWER.size))
                result = json.loads(await self.reader.readexactly(length))
                answer = self.waiting.get(request_id)
                if answer is not None and not answer.done():
                    answer.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.alive = False
            for answer in self.waiting.values():
                if not answer.done():
                    answer.set_result({"error": _LOST})
            self.on_exit()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except asyncio.TimeoutError:
            self.process.kill()
        self._answers.cancel()


class IngestPool:
    """`count` ingest processes started by `command`; each chunk goes to one alive, chosen by its
    attempt."""

    def __init__(self, count: int, command: list[str]):
        self.count, self.command = count, command
        self.processes: list[IngestProcess] = []
        self._starting = asyncio.Lock()
        self._replacements: set[asyncio.Task] = set()
        self._closing = False

    async def start(self) -> None:
        """Start the processes missing (all at first, later any that died), side by side."""
        async with self._starting:
            self.processes = [p for p in self.processes if p.alive]
            if self._closing:
                return
            started = await asyncio.gather(*(IngestProcess.start(self.command, self._replace)
                                             for _ in range(self.count - len(self.processes))),
                                           return_exceptions=True)
            self.processes += [p for p in started if isinstance(p, IngestProcess)]
            failed = [p for p in started if isinstance(p, BaseException)]
            if failed:
                raise failed[0]

    def _replace(self) -> None:
        """A process ended: another starts in the background while the others go on storing."""
        if not self._closing:
            replacement = asyncio.create_task(self.start())
            self._replacements.add(replacement)
            replacement.add_done_callback(self._replaced)

    def _replaced(self, replacement: asyncio.Task) -> None:
        self._replacements.discard(replacement)
        if not replacement.cancelled() and replacement.exception() is not None:
            log.error("an ingest process could not be replaced; trying again in %g s", RESTART_RETRY_S,
                      exc_info=replacement.exception())
            asyncio.get_running_loop().call_later(RESTART_RETRY_S, self._replace)

    async def store_chunk(self, token: str | None, upload: ChunkUpload) -> ChunkAck:
        alive = [p for p in self.processes if p.alive]
        if not alive:
            try:
                await asyncio.shield(self.start())
            except Exception:
                log.exception("no ingest process could be started")
            alive = [p for p in self.processes if p.alive]
            if not alive:
                raise IngestError(503, "ingest_unavailable", "The server cannot store chunks right now.")
        # An attempt's chunks go to the same process while it lives: its token, attempt and
        # segment folders are then looked up and locked in one process, not in each.
        return await alive[upload.attempt_id % len(alive)].store(token, upload)

    async def forget_tokens(self, token_hashes: list[str]) -> None:
        """Tell every process to drop these revoked tokens from its cache; a process started
        later has an empty one."""
        await asyncio.gather(*(p.forget_tokens(token_hashes) for p in self.processes if p.alive))

    async def close(self) -> None:
        self._closing = True
        for replacement in list(self._replacements):
            replacement.cancel()
        async with self._starting:
            await asyncio.gather(*(p.close() for p in self.processes), return_exceptions=True)
            self.processes = []


# ---------------------------------------------------------------------------------------------
# The ingest process


def _answer(store: UploadStore, sock: socket.socket, sending: threading.Lock, request_id: int,
            header: list, body: bytes) -> None:
    try:
        upload = ChunkUpload(**dict(zip(_UPLOAD_FIELDS, header[1:])), body=body)
        current_attempt.set(upload.attempt_id)
        ack = store.store_chunk(header[0], upload)
        result = {"ack": [getattr(ack, name) for name in _ACK_FIELDS]}
    except IngestError as exc:
        result = {"error": [exc.status, exc.code, exc.message]}
    except Exception:
        log.exception("storing a chunk failed")
        result = {"error": [500, "ingest_failed", _LOST[2]]}
    _send(sock, sending, request_id, result)


def _send(sock: socket.socket, sending: threading.Lock, request_id: int, result: dict) -> None:
    data = json.dumps(result).encode()
    with sending:
        sock.sendall(ANSWER.pack(request_id, len(data)) + data)


def serve(sock: socket.socket, store: UploadStore) -> None:
    """Store the chunks that come over `sock` until it closes, then finish those under way."""
    sending = threading.Lock()
    try:
        sock.sendall(READY)
    except BrokenPipeError:  # the app stopped while this process was starting: nothing came
        return
    incoming = sock.makefile("rb")
    with ThreadPoolExecutor(THREADS_PER_PROCESS, thread_name_prefix="ingest") as threads:
        while head := incoming.read(REQUEST.size):
            request_id, header_length, body_length = REQUEST.unpack(head)
            header = json.loads(incoming.read(header_length))
            body = incoming.read(body_length)
            if isinstance(header, dict):  # {"forget": [...]}
                # At once, in the order it came: chunks sent after it are checked anew.
                store.forget_tokens(header["forget"])
                _send(sock, sending, request_id, {"forgotten": len(header["forget"])})
            else:
                threads.submit(_answer, store, sock, sending, request_id, header, body)

