"""Camera stills (JPEG) from the browser, stored like chunks: durably, once per seq."""

from datetime import datetime

from sqlalchemy import select

from proctor_app.db import session_scope
from proctor_app.media.ingest.checks import MAX_SEQ, MAX_SNAPSHOT_BYTES, check_sha256, parse_client_ms
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.window import check_accepting
from proctor_app.media.storage import Storage
from proctor_app.media.storage.layout import snapshot_path
from proctor_app.models import Attempt, Snapshot



def store_snapshot(files: Storage, attempt_id: int, seq: int, body: bytes, sha256: str | None,
                   taken_ms: str | None, now: datetime) -> dict:
    """One camera still (JPEG) of an authorised upload; idempotent like chunks. Raises IngestError."""
    if not 0 <= seq <= MAX_SEQ:
        raise IngestError(400, "bad_seq", f"The seq must be from 0 to {MAX_SEQ}.")
    if len(body) > MAX_SNAPSHOT_BYTES:
        raise IngestError(413, "too_large", "The snapshot is larger than the limit.")
    if not body.startswith(b"\xff\xd8\xff"):
        raise IngestError(400, "not_jpeg", "A snapshot must be a JPEG image.")
    digest = check_sha256(sha256, body)
    taken_at = parse_client_ms(taken_ms, "taken_ms", now)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        check_accepting(attempt, now)
        relative = snapshot_path(attempt_id, attempt.started_at, seq)
        with files.locked_folder(files.absolute(relative).parent):
            stored = db.execute(select(Snapshot.sha256).where(Snapshot.attempt_id == attempt_id,
                                                              Snapshot.seq == seq)).scalar()
            if stored == digest:
                return {"status": "already_stored", "seq": seq}
            if stored is not None:
                raise IngestError(409, "snapshot_conflict",
                                  "A different snapshot is already stored under this seq.")
            files.write_durably(relative, body)
            db.add(Snapshot(attempt_id=attempt_id, seq=seq, taken_at=taken_at, path=relative,
                            size=len(body), sha256=digest))
            db.commit()
    return {"status": "stored", "seq": seq}

