"""The statements ingest runs hundreds of times a second, built once; the attempt a chunk goes to
(cached); the recording row of a stream, made when first needed."""

from datetime import datetime

from sqlalchemy import Row, bindparam, case, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from proctor_app.clock import Clock, system_clock
from proctor_app.db import connection_scope
from proctor_app.media.ingest.window import FINAL_RECORDING, check_accepting
from proctor_app.models import Attempt, Chunk, Recording, RecordingStatus, Segment


class DriverStatement:
    """A statement of every chunk, run on the DBAPI cursor of a Connection (in its transaction):
    compiled once per dialect, its values put through the columns' bind processors as SQLAlchemy
    does. SQLAlchemy's own execution of the three statements and the read (its context, parameter
    and row handling) cost 0.13 ms of a chunk's 0.87 ms in one thread, and 0.2-0.3 ms of the
    ingest processes' 1.5 ms under bench/ingest.py."""

    def __init__(self, statement, column_keys: list[str] | None = None):
        self.statement, self.column_keys = statement, column_keys
        self._compiled: dict[str, tuple] = {}

    def _for(self, dialect) -> tuple:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
            processors = {name: processor for name, bind in compiled.binds.items()
                          if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))}
            found = self._compiled[dialect.name] = (compiled, processors)
        return found

    def _params(self, compiled, processors: dict, values: dict):
        params = compiled.construct_params(values)  # with the statement's own constants
        for name, processor in processors.items():
            params[name] = processor(params[name])
        names = compiled.positiontup
        return params if names is None else tuple(params[name] for name in names)

    def one(self, conn: Connection, values: dict) -> tuple:
        """The one row a query gives, as a tuple of its columns' values."""
        compiled, processors = self._for(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(compiled.string, self._params(compiled, processors, values))
            return cursor.fetchone()
        finally:
            cursor.close()

    def execute_many(self, conn: Connection, rows: list[dict]) -> int:
        """The rows the statement changed, all of `rows` together."""
        compiled, processors = self._for(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.executemany(compiled.string, [self._params(compiled, processors, row) for row in rows])
            return cursor.rowcount
        finally:
            cursor.close()


# Chunks arrive hundreds of times a second: their statements are built once, executed with values.
_attempts, _recordings, _segments, chunks_table = (m.__table__ for m in (Attempt, Recording, Segment, Chunk))
_TIME = _segments.c.started_at.type


def _constants(values) -> list:
    """Values for IN that executemany accepts (a plain list becomes one expanding parameter)."""
    return [literal(str(value)) for value in sorted(values)]


def _earliest(column, value):
    return case((column.is_(None) | (column > value), value), else_=column)


def _latest(column, value):
    return case((column.is_(None) | (column < value), value), else_=column)


ATTEMPT_FOR_CHUNK = (
    select(_attempts.c.status, _attempts.c.started_at, _attempts.c.ended_at, _attempts.c.deadline_at,
           _recordings.c.id.label("recording_id"), _recordings.c.status.label("recording_status"))
    .select_from(_attempts.outerjoin(_recordings, (_recordings.c.attempt_id == _attempts.c.id)
                                     & (_recordings.c.stream == bindparam("stream"))))
    .where(_attempts.c.id == bindparam("attempt_id")))
_RECORDING_ID = select(_recordings.c.id).where(_recordings.c.attempt_id == bindparam("attempt_id"),
                                               _recordings.c.stream == bindparam("stream"))
# The recording's stored bytes, and its segment (id None when it has none yet) with the hash of
# what is stored under the seq (None when nothing is): always one row, in this order.
SEGMENT_AND_STORED = DriverStatement(
    select(_recordings.c.byte_count.label("recording_bytes"), _segments.c.id, _segments.c.chunk_count,
           _segments.c.contiguous_seq, chunks_table.c.sha256)
    .select_from(_recordings.outerjoin(_segments, (_segments.c.recording_id == _recordings.c.id)
                                       & (_segments.c.number == bindparam("number")))
                 .outerjoin(chunks_table, (chunks_table.c.segment_id == _segments.c.id)
                            & (chunks_table.c.seq == bindparam("seq"))))
    .where(_recordings.c.id == bindparam("recording_id")))
SEGMENT_COUNT = select(func.count()).select_from(_segments).where(
    _segments.c.recording_id == bindparam("recording_id"))
# One statement for all segments a batch starts (when an exam starts, most chunks start one).
INSERT_SEGMENTS = insert(_segments).returning(_segments.c.id, sort_by_parameter_order=True)
HIGHEST_OTHER_SEQ = select(func.max(chunks_table.c.seq)).where(
    chunks_table.c.segment_id == bindparam("segment_id"), chunks_table.c.seq != bindparam("seq"))
SEQS_AFTER = select(chunks_table.c.seq).where(chunks_table.c.segment_id == bindparam("segment_id"),
                                          chunks_table.c.seq > bindparam("after")).order_by(chunks_table.c.seq)
UPDATE_SEGMENT = DriverStatement(update(_segments).where(_segments.c.id == bindparam("b_id")).values(
    chunk_count=_segments.c.chunk_count + 1, byte_count=_segments.c.byte_count + bindparam("b_size"),
    contiguous_seq=bindparam("b_contiguous"),
    started_at=_earliest(_segments.c.started_at, bindparam("b_start", type_=_TIME)),
    ended_at=_latest(_segments.c.ended_at, bindparam("b_end", type_=_TIME))))
# Guarded: a chunk committed after processing took its recording, or after the upload window
# closed, would be acknowledged yet never be in the video (the checks before the write may be
# seconds old).
UPDATE_RECORDING = DriverStatement(update(_recordings).where(
    _recordings.c.id == bindparam("b_id"),
    _recordings.c.status.not_in(_constants(FINAL_RECORDING)),
    select(_attempts.c.id).where(
        _attempts.c.id == _recordings.c.attempt_id,
        func.coalesce(_attempts.c.ended_at, _attempts.c.deadline_at) >= bindparam("b_window", type_=_TIME),
    ).exists(),
).values(
    chunk_count=_recordings.c.chunk_count + 1, byte_count=_recordings.c.byte_count + bindparam("b_size"),
    gap_count=_recordings.c.gap_count + bindparam("b_new_holes"),
    # A recording reported failed before any chunk came is recording after all.
    status=case((_recordings.c.status.in_(_constants([RecordingStatus.not_started, RecordingStatus.failed])),
                 RecordingStatus.in_progress), else_=_recordings.c.status),
    mime_type=case((_recordings.c.mime_type == "", bindparam("b_mime")), else_=_recordings.c.mime_type),
    started_at=_earliest(_recordings.c.started_at, bindparam("b_start", type_=_TIME)),
    ended_at=_latest(_recordings.c.ended_at, bindparam("b_end", type_=_TIME))))
CHUNK_COLUMNS = ["segment_id", "seq", "size", "sha256", "path", "start_time", "end_time", "received_at", "meta"]
INSERT_CHUNKS = DriverStatement(insert(chunks_table), CHUNK_COLUMNS)

# Attempt rows barely change while chunks stream in, so each (attempt, stream) is read at most
# every UPLOAD_TARGET_TTL_S (a candidate sends a chunk every few seconds). Attempts only ever close,
# so a stale target errs towards taking a chunk, and the guarded commit above refuses it then.
UPLOAD_TARGET_TTL_S = 30.0
TARGETS_MAX = 20_000


class UploadTargets:
    """The attempt (and its recording of the stream) each chunk goes to, cached."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._targets: dict[tuple[int, str], tuple[float, Row]] = {}

    def get(self, attempt_id: int, stream: str, now: datetime) -> Row:
        """The target, if it takes uploads now; raises IngestError."""
        key = (attempt_id, stream)
        read_at, target = self._targets.get(key, (float("-inf"), None))
        if self.clock.monotonic() - read_at > UPLOAD_TARGET_TTL_S:
            with connection_scope() as conn:
                target = conn.execute(ATTEMPT_FOR_CHUNK, {"attempt_id": attempt_id, "stream": stream}).one()
            if target.recording_id is not None:  # else the caller creates the recording first
                if len(self._targets) >= TARGETS_MAX:
                    self._targets.clear()
                self._targets[key] = (self.clock.monotonic(), target)
        check_accepting(target, now, target.recording_status)
        return target

    def forget(self, attempt_id: int, stream: str) -> None:
        self._targets.pop((attempt_id, stream), None)


def recording_id(db: Session, attempt_id: int, stream: str) -> int:
    """The id of the attempt's recording of the stream, created when it has none yet."""
    key = {"attempt_id": attempt_id, "stream": stream}
    found = db.connection().execute(_RECORDING_ID, key).scalar()
    if found is not None:
        return found
    try:
        with db.begin_nested():
            row = Recording(attempt_id=attempt_id, stream=stream)
            db.add(row)
        return row.id
    except IntegrityError:  # another request created it first
        return db.connection().execute(_RECORDING_ID, key).scalar_one()
