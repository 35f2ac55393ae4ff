"""Tamper evidence against real files: a finalized recording's signed manifest, `verify` by attempt
and of a bundle copied elsewhere (also as the command a verifier runs), one flipped byte in a
chunk, the MP4, the manifest or a bundle file named as what differs, and the HTTP routes."""

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import select

from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.evidence.bundle import write_bundle
from proctor_app.media.evidence.manifest import GENESIS, entry_hash, manifest_path
from proctor_app.media.evidence.signing import fingerprint, install_key, public_key_text
from proctor_app.media.evidence.verify import verify_attempt, verify_bundle
from proctor_app.media.playback.links import evidence_link
from proctor_app.media.processing import finalize
from proctor_app.media.retention import plan as retention_plan
from proctor_app.media.storage import storage
from proctor_app.models import AuditLog, Chunk, Segment, utcnow
from proctor_app.runtime import upload_store
from tests.support import samples
from tests.support.factories import user_id
from tests.support.finalized import CLIP_S, recording_of

pytestmark = pytest.mark.usefixtures("demo_db")
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg body" * 50


@pytest.fixture(scope="module")
def attempt_id(clip, app_server) -> int:
    """A camera recording of 6 chunks, finalized with its raw chunks kept, and one snapshot."""
    started = utcnow() - timedelta(seconds=CLIP_S + 10)
    sample = samples.start_attempt(started)
    samples.upload_segment(sample, "camera", 0, samples.evenly(samples.cut(clip, CLIP_S), started, CLIP_S),
                           samples.MIME["h264"])
    upload_store.store_snapshot(sample.token, sample.attempt_id, 0, JPEG, hashlib.sha256(JPEG).hexdigest(),
                                str(int(started.timestamp() * 1000)))
    samples.end_attempt(sample, started + timedelta(seconds=CLIP_S))
    asyncio.run(finalize.finalize_attempt(sample.attempt_id, keep_raw=True))
    return sample.attempt_id


@contextmanager
def flipped(path: Path, offset: int, mask: int = 0xFF):
    """One byte of the file changed (XOR `mask`), put back afterwards."""
    original = path.read_bytes()
    changed = bytearray(original)
    changed[offset] ^= mask
    path.write_bytes(bytes(changed))
    try:
        yield
    finally:
        path.write_bytes(original)


def run_verify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proctor_app.media", "verify", *args],
                          capture_output=True, text=True, env=os.environ, timeout=120)


def chunk_paths(attempt_id: int) -> list[Path]:
    rec = recording_of(attempt_id)
    with session_scope() as db:
        paths = db.exec(select(Chunk.path).join(Segment, Segment.id == Chunk.segment_id)
                        .where(Segment.recording_id == rec.id).order_by(Segment.number, Chunk.seq)).all()
    return [storage.absolute(p) for p in paths]


def test_the_manifest_chains_every_chunk_and_names_the_mp4(attempt_id):
    rec = recording_of(attempt_id)
    manifest = json.loads(storage.absolute(manifest_path(rec)).read_text())
    chunks = manifest["chunks"]
    assert [(c["segment"], c["seq"]) for c in chunks] == [(0, i) for i in range(len(chunk_paths(attempt_id)))]
    assert chunks[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] == entry_hash(a) for a, b in zip(chunks, chunks[1:]))
    assert manifest["chain_head"] == chunks[-1]["hash"]
    assert manifest["mp4"]["sha256"] == rec.sha256 and manifest["mp4"]["size"] == rec.size_bytes
    assert manifest["signature"]["public_key"] == public_key_text(install_key())


def test_an_untouched_recording_verifies(attempt_id):
    report = verify_attempt(attempt_id)
    assert report.ok, report.problems
    done = run_verify(str(attempt_id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: everything matches" in done.stdout


def test_a_flipped_byte_in_a_chunk_is_named(attempt_id):
    with flipped(chunk_paths(attempt_id)[2], 100):
        assert verify_attempt(attempt_id).problems == ["chunk camera/0/2: its bytes differ from the manifest"]
        done = run_verify(str(attempt_id))
    assert done.returncode == 1
    assert "DIFFERS: chunk camera/0/2: its bytes differ from the manifest" in done.stdout


def test_a_flipped_byte_in_the_mp4_is_named(attempt_id):
    with flipped(storage.absolute(recording_of(attempt_id).mp4_path), 5000):
        assert verify_attempt(attempt_id).problems == ["camera MP4: its bytes differ from the manifest"]


def test_a_flipped_byte_in_the_manifest_is_named(attempt_id):
    path = storage.absolute(manifest_path(recording_of(attempt_id)))
    text = path.read_text()
    # A digit of the third chunk's size: the entry and the signature no longer hold.
    offset = text.index('"size"', text.index('"seq": 2')) + len('"size": ')
    with flipped(path, offset, mask=0x01):
        problems = verify_attempt(attempt_id).problems
    assert problems == ["camera manifest: its signature does not match its content",
                        "chunk camera/0/2: its manifest entry was altered"]
    with flipped(path, offset):  # no longer text at all
        assert verify_attempt(attempt_id).problems == ["camera manifest: unreadable (UnicodeDecodeError)"]


def test_a_bundle_copied_elsewhere_verifies_offline_and_names_a_flipped_byte(attempt_id, tmp_path):
    made = tmp_path / "made" / "bundle.zip"
    made.parent.mkdir()
    index = write_bundle(attempt_id, made, storage, install_key())
    assert {"camera.mp4", "camera.manifest.json", "events.json", "snapshots/00000000.jpg"} <= set(index["files"])
    elsewhere = tmp_path / "elsewhere" / "copy.zip"
    elsewhere.parent.mkdir()
    shutil.copy(made, elsewhere)
    made.unlink()
    key = public_key_text(install_key())
    assert verify_bundle(elsewhere, key).ok
    done = run_verify("--bundle", str(elsewhere), "--public-key", key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fingerprint(key) in done.stdout

    def with_changed(member: str) -> Path:
        target = tmp_path / f"changed-{member.replace('/', '_')}.zip"
        with zipfile.ZipFile(elsewhere) as source, zipfile.ZipFile(target, "w") as out:
            for info in source.infolist():
                data = bytearray(source.read(info.filename))
                if info.filename == member:
                    data[len(data) // 2] ^= 0xFF
                out.writestr(info.filename, bytes(data))
        return target

    problems = verify_bundle(with_changed("camera.mp4"), key).problems
    assert problems == ["camera.mp4: its bytes differ from bundle.json",
                        "camera MP4: its bytes differ from the manifest"]
    assert verify_bundle(with_changed("events.json"), key).problems == [
        "events.json: its bytes differ from bundle.json"]
    assert verify_bundle(with_changed("snapshots/00000000.jpg"), key).problems == [
        "snapshots/00000000.jpg: its bytes differ from bundle.json"]
    # Signed by another key than the one the verifier trusts.
    other = public_key_text(Ed25519PrivateKey.generate())
    assert "bundle.json: it is signed by another key than this install's" in verify_bundle(elsewhere, other).problems


@pytest.fixture(scope="module")
def tokens(app_server):
    return {email: sessions.login(email, DEMO_PASSWORD)[0]
            for email in ("supervisor@example.com", "proctor@example.com")}


def test_the_signing_key_and_the_bundle_over_http(app_server, attempt_id, tokens, tmp_path):
    with httpx.Client(base_url=app_server.url, timeout=60) as anonymous:
        published = anonymous.get("/api/v1/signing-key").json()
        assert published["public_key"] == public_key_text(install_key())
        assert published["fingerprint_sha256"] == fingerprint(published["public_key"])
        assert anonymous.get(evidence_link(user_id("supervisor@example.com"), attempt_id)).status_code == 401
    supervisor = user_id("supervisor@example.com")
    with httpx.Client(base_url=app_server.url, timeout=60,
                      cookies={SESSION_COOKIE: tokens["supervisor@example.com"]}) as http:
        link = evidence_link(supervisor, attempt_id)
        assert http.get(link.split("?")[0] + "?download=1").status_code == 403  # unsigned
        answer = http.get(link)
        assert answer.status_code == 200, (answer.text, dict(answer.headers), link)
        assert answer.headers["content-type"] == "application/zip"
    path = tmp_path / "downloaded.zip"
    path.write_bytes(answer.content)
    assert verify_bundle(path, published["public_key"]).ok
    with session_scope() as db:
        audited = db.exec(select(AuditLog).where(AuditLog.action == "evidence_downloaded",
                                                 AuditLog.target == f"attempt:{attempt_id}",
                                                 AuditLog.user_id == supervisor)).all()
    assert len(audited) == 1
    with httpx.Client(base_url=app_server.url, timeout=60,
                      cookies={SESSION_COOKIE: tokens["proctor@example.com"]}) as http:
        answer = http.get(evidence_link(user_id("proctor@example.com"), attempt_id))
    assert answer.status_code == 403


def test_retention_deletes_the_manifests_with_the_media(attempt_id):
    """Bundles are built on request and never stored: the signed manifests beside the MP4s are the
    evidence's only files of its own, and retention deletes them with the attempt's folders."""
    rec = recording_of(attempt_id)
    with session_scope() as db:
        due = retention_plan.plan(db, utcnow() + timedelta(days=3650), 1)  # a dry plan: deletes nothing
    item = next(i for i in due.items if i.attempt_id == attempt_id)
    assert {manifest_path(rec), rec.mp4_path} <= set(item.files)
    assert any(manifest_path(rec).startswith(folder + "/") for folder in item.folders)
