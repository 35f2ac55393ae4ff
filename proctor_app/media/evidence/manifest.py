"""A recording's manifest: every stored chunk in (segment, seq) order, each entry holding its
chunk's SHA-256 and the hash of the entry before it, so no chunk can be changed, dropped, added or
moved without breaking the chain; and the hash of the MP4 made from them. Signed at finalize.

The chain is built at finalize from the chunk rows, whose SHA-256 ingest checked against the body
before storing it (the chunk was refused otherwise): the upload path does no extra work for it.
"""

import hashlib
import json
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from proctor_app.media.evidence.signing import canonical, sign
from proctor_app.media.storage import Storage
from proctor_app.media.storage.local import file_sha256
from proctor_app.models import Chunk, Recording, Segment, utcnow

FORMAT = "proctor-recording-manifest/1"
# The `prev` of the first entry.
GENESIS = "0" * 64


def manifest_path(recording: Recording) -> str:
    """Beside the MP4: processed/.../<stream>.manifest.json."""
    return str(Path(recording.mp4_path).with_name(f"{recording.stream}.manifest.json"))


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def chunk_chain(db: Session, recording_id: int) -> list[dict]:
    rows = db.exec(select(Segment.number, Chunk).join(Chunk, Chunk.segment_id == Segment.id)
                   .where(Segment.recording_id == recording_id).order_by(Segment.number, Chunk.seq)).all()
    chain, prev = [], GENESIS
    for number, chunk in rows:
        entry = {"segment": number, "seq": chunk.seq, "size": chunk.size, "sha256": chunk.sha256,
                 "start": _time(chunk.start_time), "end": _time(chunk.end_time),
                 "received_at": _time(chunk.received_at), "prev": prev}
        entry["hash"] = prev = entry_hash(entry)
        chain.append(entry)
    return chain


def write_manifest(db: Session, recording: Recording, files: Storage, key,
                   now: datetime | None = None) -> str:
    """Signs and writes the manifest of a recording whose MP4 is saved; returns its path (relative
    to the storage folder)."""
    chain = chunk_chain(db, recording.id)
    mp4 = files.absolute(recording.mp4_path)
    # Finalize hashed the MP4 it verified a moment ago; older rows may lack it.
    mp4_sha256 = recording.sha256 or file_sha256(mp4)
    document = {
        "format": FORMAT, "attempt_id": recording.attempt_id, "stream": recording.stream,
        "status": recording.status, "gaps": recording.gaps, "chunks": chain,
        "chain_head": chain[-1]["hash"] if chain else GENESIS,
        "mp4": {"file": f"{recording.stream}.mp4", "size": mp4.stat().st_size, "sha256": mp4_sha256,
                "duration_s": recording.duration_s},
        "signed_at": (now or utcnow()).isoformat(),
    }
    relative = manifest_path(recording)
    files.write_durably(relative, json.dumps(sign(key, document), indent=1).encode())
    return relative
