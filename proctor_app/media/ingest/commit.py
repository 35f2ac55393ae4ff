"""The rows of chunks on disk, committed together by one thread (group commit)."""

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from proctor_app import db as database
from proctor_app.db import connection_scope
from proctor_app.media.ingest.checks import ChunkAck, ChunkUpload
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.rows import (
    ATTEMPT_FOR_CHUNK,
    HIGHEST_OTHER_SEQ,
    INSERT_CHUNKS,
    INSERT_SEGMENTS,
    SEQS_AFTER,
    UPDATE_RECORDING,
    UPDATE_SEGMENT,
)
from proctor_app.media.ingest.window import FLUSH_GRACE, check_accepting
from proctor_app.platform import locked_file


def _next_contiguous(conn, segment_id: int, contiguous: int) -> int:
    """Walk up from `contiguous` over stored seqs that arrived early."""
    for seq in conn.execute(SEQS_AFTER, {"segment_id": segment_id, "after": contiguous}).scalars():
        if seq != contiguous + 1:
            break
        contiguous = seq
    return contiguous


@dataclass(frozen=True)
class ChunkOnDisk:
    """A chunk durably written, its folder still locked, whose rows wait for the group commit."""

    upload: ChunkUpload
    relative: str
    digest: str
    start: datetime
    end: datetime
    mime: str
    meta: dict
    received_at: datetime
    recording_id: int
    # (id, chunk_count, contiguous_seq) of its segment as read under the folder lock; None: new.
    segment: tuple[int, int, int] | None
    committed: Future = field(default_factory=Future, compare=False)


def holes_added(count_before: int, highest_before: int, seq: int) -> int:
    """How the count of holes (seqs below the highest stored one that have not arrived yet) of a
    segment changes when `seq` is stored: -1 when it fills one, more when it skips ahead."""
    holes_before = highest_before + 1 - count_before
    holes_after = max(highest_before, seq) + 1 - (count_before + 1)
    return holes_after - holes_before


def _commit_rows(batch: list[ChunkOnDisk], write_turn: "WriteTurn") -> list[ChunkAck]:
    """The rows of chunks on disk in one transaction: chunk rows, segment and recording counters.

    A batch holds at most one chunk per segment (each waits holding its segment folder's lock),
    so the segment state each one read is still the segment's state here.
    """
    acks, segment_updates, recording_updates = [], [], []
    with write_turn(), connection_scope() as conn:
        starting = [chunk for chunk in batch if chunk.segment is None]  # first chunks of segments
        new_ids = iter(conn.execute(INSERT_SEGMENTS, [
            {"recording_id": chunk.recording_id, "number": chunk.upload.segment, "mime_type": chunk.mime,
             "started_at": chunk.start, "ended_at": chunk.end, "chunk_count": 0, "byte_count": 0,
             "contiguous_seq": -1, "received_at": chunk.received_at}
            for chunk in starting]).scalars().all() if starting else ())
        segment_ids = [next(new_ids) if chunk.segment is None else chunk.segment[0] for chunk in batch]
        INSERT_CHUNKS.execute_many(conn, [
            {"segment_id": segment_id, "seq": chunk.upload.seq, "size": len(chunk.upload.body),
             "sha256": chunk.digest, "path": chunk.relative, "start_time": chunk.start,
             "end_time": chunk.end, "received_at": chunk.received_at, "meta": chunk.meta}
            for chunk, segment_id in zip(batch, segment_ids)])
        for chunk, segment_id in zip(batch, segment_ids):
            _, count_before, contiguous_before = chunk.segment or (segment_id, 0, -1)
            seq = chunk.upload.seq
            in_order_before = count_before == contiguous_before + 1  # nothing arrived early
            highest_before = contiguous_before if in_order_before else conn.execute(
                HIGHEST_OTHER_SEQ, {"segment_id": segment_id, "seq": seq}).scalar()
            contiguous = contiguous_before
            if seq == contiguous_before + 1:
                contiguous = seq if in_order_before else _next_contiguous(conn, segment_id, seq)
            size = len(chunk.upload.body)
            segment_updates.append({"b_id": segment_id, "b_size": size, "b_contiguous": contiguous,
                                    "b_start": chunk.start, "b_end": chunk.end})
            recording_updates.append({"b_id": chunk.recording_id, "b_size": size, "b_mime": chunk.mime,
                                      "b_new_holes": holes_added(count_before, highest_before, seq), "b_start": chunk.start,
                                      "b_end": chunk.end, "b_window": chunk.received_at - FLUSH_GRACE})
            acks.append(ChunkAck("stored", chunk.upload.stream, chunk.upload.segment, seq, contiguous,
                                 count_before + 1))
        if UPDATE_RECORDING.execute_many(conn, recording_updates) != len(batch):
            if len(batch) > 1:
                raise _LateInBatch  # the chunks are committed one by one, and the late one refused
            late = batch[0]
            target = conn.execute(ATTEMPT_FOR_CHUNK, {"attempt_id": late.upload.attempt_id,
                                                       "stream": late.upload.stream}).one()
            check_accepting(target, late.received_at, target.recording_status)
            raise IngestError(409, "recording_finalized", "The recording takes no more chunks.")
        UPDATE_SEGMENT.execute_many(conn, segment_updates)
    return acks


class _LateInBatch(Exception):
    pass


class WriteTurn:
    """On SQLite, the ingest processes take turns for the write transaction by a file lock: SQLite
    lets one writer in at a time and its busy handler waits by sleeping, up to 100 ms a try."""

    @contextmanager
    def __call__(self) -> Iterator[None]:
        engine = database.get_engine()  # looked up each time: tests point it at PostgreSQL
        if engine.dialect.name != "sqlite":
            yield
            return
        with locked_file(f"{engine.url.database}.write-turn"):
            yield


class GroupCommit:
    """One thread commits the rows of all chunks waiting, in one transaction per batch.

    Hundreds of uploads a second each committing alone spend their time taking turns for the
    database's write lock (SQLite has one writer and its busy handler waits by sleeping); one
    thread that commits whatever queued up meanwhile pays one transaction per batch, while the
    uploads' file writes and fsyncs still run in parallel before it. The upload waits for its
    commit: acknowledged means committed.
    """

    MAX_BATCH = 64
    # A batch waits this long at most for the chunks of this process being written meanwhile, as
    # PostgreSQL's commit_delay waits for other transactions: at a few hundred chunks a second
    # most batches held one chunk, and a batch's statements and commit cost more CPU than its rows.
    LINGER_S = 0.002

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[ChunkOnDisk] = queue.SimpleQueue()
        self._thread_pid: int | None = None  # a forked worker process starts a thread of its own
        self._starting = threading.Lock()
        self._write_turn = WriteTurn()
        self._writing = 0  # chunks being written, whose rows come next
        self._counting = threading.Lock()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a chunk's file write: a batch waits for it (LINGER_S at most)."""
        with self._counting:
            self._writing += 1
        try:
            yield
        finally:
            with self._counting:
                self._writing -= 1

    def commit(self, chunk: ChunkOnDisk) -> ChunkAck:
        if self._thread_pid != os.getpid():
            with self._starting:
                if self._thread_pid != os.getpid():
                    threading.Thread(target=self._run, name="chunk-group-commit", daemon=True).start()
                    self._thread_pid = os.getpid()
        self._queue.put(chunk)
        return chunk.committed.result()

    def _run(self) -> None:
        while True:
            batch, lingered = [self._queue.get()], False
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    if lingered or not self._writing:
                        break
                    lingered = True
                    try:
                        batch.append(self._queue.get(timeout=self.LINGER_S))
                    except queue.Empty:
                        break
            try:
                acks = _commit_rows(batch, self._write_turn)
            except Exception:
                # One refused or failing chunk must not fail the others: each on its own then.
                for chunk in batch:
                    try:
                        chunk.committed.set_result(_commit_rows([chunk], self._write_turn)[0])
                    except Exception as exc:
                        chunk.committed.set_exception(exc)
            else:
                for chunk, ack in zip(batch, acks):
                    chunk.committed.set_result(ack)

