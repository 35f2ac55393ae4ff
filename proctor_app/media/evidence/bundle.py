"""An attempt's evidence bundle: a zip of its MP4s with their signed manifests, its proctoring
events as JSON and its snapshots, indexed by a signed bundle.json that lists every file's hash.
Built on request into a temporary file (nothing is kept: retention has only the originals to
delete); it verifies offline with `python -m proctor_app.media verify --bundle PATH`."""

import hashlib
import json
import zipfile
from pathlib import Path

from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.evidence.manifest import manifest_path
from proctor_app.media.evidence.signing import sign
from proctor_app.media.evidence.verify import BUNDLE_INDEX
from proctor_app.media.storage import Storage
from proctor_app.models import Attempt, ProctoringEvent, Recording, RecordingStatus, Snapshot, utcnow

FORMAT = "proctor-evidence-bundle/1"


def _event_json(event: ProctoringEvent) -> dict:
    return {"id": event.id, "kind": event.kind, "severity": event.severity,
            "server_time": event.server_time.isoformat(),
            "client_time": event.client_time.isoformat() if event.client_time else None, "data": event.data}


def write_bundle(attempt_id: int, target: Path, files: Storage, key) -> dict:
    """Writes the bundle to `target`; returns its signed index. Raises LookupError for an attempt
    without media."""
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt is None or attempt.media_expired_at is not None:
            raise LookupError("no media")
        recordings = db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                     Recording.mp4_path != "",
                                                     Recording.status != RecordingStatus.expired)).all()
        events = db.exec(select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt_id)
                         .order_by(ProctoringEvent.server_time, ProctoringEvent.id)).all()
        snapshots = db.exec(select(Snapshot).where(Snapshot.attempt_id == attempt_id)
                            .order_by(Snapshot.seq)).all()
        sources = {}
        for rec in recordings:
            sources[f"{rec.stream}.mp4"] = files.absolute(rec.mp4_path)
            sources[f"{rec.stream}.manifest.json"] = files.absolute(manifest_path(rec))
        for snap in snapshots:
            sources[f"snapshots/{snap.seq:08d}.jpg"] = files.absolute(snap.path)
        events_json = json.dumps([_event_json(e) for e in events], indent=1).encode()
    listed = {}
    # Stored: the MP4s and JPEGs are compressed already.
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as bundle:
        for name, source in sources.items():
            if not source.exists():
                continue
            bundle.write(source, name)
            with open(source, "rb") as f:
                listed[name] = {"sha256": hashlib.file_digest(f, "sha256").hexdigest(),
                                "size": source.stat().st_size}
        bundle.writestr("events.json", events_json)
        listed["events.json"] = {"sha256": hashlib.sha256(events_json).hexdigest(), "size": len(events_json)}
        index = sign(key, {"format": FORMAT, "attempt_id": attempt_id, "created_at": utcnow().isoformat(),
                           "files": listed})
        bundle.writestr(BUNDLE_INDEX, json.dumps(index, indent=1))
    return index
