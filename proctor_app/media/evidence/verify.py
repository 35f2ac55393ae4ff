"""Verification of recordings against their signed manifests, in the install (by attempt) or
offline (an evidence bundle): the signature, the chain of chunk hashes, every chunk still stored,
the MP4, and in a bundle every file it lists. Each problem names what differs."""

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.evidence.manifest import GENESIS, entry_hash, manifest_path
from proctor_app.media.evidence.signing import fingerprint, install_key, public_key_text, signature_problem
from proctor_app.media.storage import Storage, storage
from proctor_app.models import Chunk, Recording, RecordingStatus, Segment

BUNDLE_INDEX = "bundle.json"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_manifest(manifest: dict, report: Report, trusted_key: str | None,
                   chunk_bytes: Callable[[int, int], bytes | None], mp4_sha256: str | None) -> None:
    """Adds to `report` what differs between the manifest, its signature, the chunks (None: not
    stored any more) and the MP4's hash (None: missing)."""
    stream = manifest.get("stream", "?")
    problem = signature_problem(manifest, trusted_key)
    if problem:
        report.problems.append(f"{stream} manifest: {problem}")
    prev, unchecked = GENESIS, 0
    for entry in manifest.get("chunks", []):
        name = f"chunk {stream}/{entry.get('segment')}/{entry.get('seq')}"
        if entry.get("prev") != prev:
            report.problems.append(f"{name}: the chain is broken before it (an entry removed, added or moved)")
        if entry_hash(entry) != entry.get("hash"):
            report.problems.append(f"{name}: its manifest entry was altered")
        prev = entry.get("hash")
        data = chunk_bytes(entry.get("segment"), entry.get("seq"))
        if data is None:
            unchecked += 1
        elif hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            report.problems.append(f"{name}: its bytes differ from the manifest")
    if manifest.get("chain_head") != prev:
        report.problems.append(f"{stream} manifest: the chain's head does not match its last entry")
    if unchecked:
        report.notes.append(f"{stream}: {unchecked} chunks not stored any more (deleted after "
                            "processing): their bytes were not checked, their chain was")
    if mp4_sha256 is None:
        report.problems.append(f"{stream} MP4: missing")
    elif mp4_sha256 != manifest.get("mp4", {}).get("sha256"):
        report.problems.append(f"{stream} MP4: its bytes differ from the manifest")


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def verify_attempt(attempt_id: int, files: Storage = storage) -> Report:
    """The attempt's processed recordings against their manifests, with this install's key."""
    report = Report()
    trusted = public_key_text(install_key())
    with session_scope() as db:
        recordings = db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                     Recording.mp4_path != "",
                                                     Recording.status != RecordingStatus.expired)
                             .order_by(Recording.stream)).all()
        for rec in recordings:
            try:
                manifest = json.loads(files.absolute(manifest_path(rec)).read_text())
            except (OSError, ValueError) as exc:
                report.problems.append(f"{rec.stream} manifest: unreadable ({exc.__class__.__name__})")
                continue
            paths = {(number, seq): path for number, seq, path in db.exec(
                select(Segment.number, Chunk.seq, Chunk.path).join(Chunk, Chunk.segment_id == Segment.id)
                .where(Segment.recording_id == rec.id))}

            def chunk_bytes(segment, seq, paths=paths):
                path = paths.get((segment, seq))
                try:
                    return files.absolute(path).read_bytes() if path else None
                except FileNotFoundError:
                    return None

            check_manifest(manifest, report, trusted, chunk_bytes, _file_sha256(files.absolute(rec.mp4_path)))
    if not recordings:
        report.notes.append(f"attempt {attempt_id} has no processed recording")
    report.notes.append(f"signing key fingerprint {fingerprint(trusted)}")
    return report


def verify_bundle(path: Path, trusted_key: str | None = None) -> Report:
    """An evidence bundle on its own (offline): its signed index, every file it lists, and each
    recording against its manifest. Without `trusted_key` the key in the bundle is taken and its
    fingerprint noted: compare it with the install's (/api/v1/signing-key)."""
    report = Report()
    with zipfile.ZipFile(path) as bundle:
        try:
            index = json.loads(bundle.read(BUNDLE_INDEX))
        except (KeyError, ValueError):
            report.problems.append(f"{BUNDLE_INDEX}: missing or unreadable")
            return report
        problem = signature_problem(index, trusted_key)
        if problem:
            report.problems.append(f"{BUNDLE_INDEX}: {problem}")
        listed = index.get("files", {})
        present = {name for name in bundle.namelist() if name != BUNDLE_INDEX}
        for name in sorted(present - set(listed)):
            report.problems.append(f"{name}: not listed in {BUNDLE_INDEX}")
        hashes = {}
        for name, expected in sorted(listed.items()):
            if name not in present:
                report.problems.append(f"{name}: missing")
                continue
            with bundle.open(name) as f:
                hashes[name] = hashlib.file_digest(f, "sha256").hexdigest()
            if hashes[name] != expected.get("sha256"):
                report.problems.append(f"{name}: its bytes differ from {BUNDLE_INDEX}")
        key = trusted_key or index.get("signature", {}).get("public_key")
        for name in sorted(n for n in present if n.endswith(".manifest.json")):
            try:
                manifest = json.loads(bundle.read(name))
            except ValueError:
                report.problems.append(f"{name}: unreadable")
                continue
            mp4 = manifest.get("mp4", {}).get("file", "")
            check_manifest(manifest, report, key, lambda segment, seq: None, hashes.get(mp4))
    if key:
        report.notes.append(f"signing key fingerprint {fingerprint(key)}")
    return report
