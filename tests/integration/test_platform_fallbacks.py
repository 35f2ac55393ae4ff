"""proctor_app/platform.py's fallbacks, run for real on Linux: a child process whose
sitecustomize takes away what Windows lacks (fcntl, O_DIRECT, folder descriptors, Unix socket streams)
imports the app's runtime (ingest and the live relay in the app process), writes files durably, takes locks and stores uploaded chunks."""

import os
import subprocess
import sys
import textwrap

import pytest

from proctor_app.db import session_scope
from proctor_app.services import uploads
from tests.support.server import ROOT
from tests.support.uploads import new_attempt

pytestmark = pytest.mark.usefixtures("demo_db")

WITHOUT_POSIX_CALLS = """
import asyncio, os, select, sys
sys.modules["fcntl"] = None  # import fcntl: ImportError, as on Windows
del os.O_DIRECT
os.supports_dir_fd.clear()
del asyncio.open_unix_connection  # (psutil needs socket.AF_UNIX itself on Linux)
del select.poll


def windows_like(call, name):
    def refusing(path, *args, **kwargs):
        if any(kwargs.get(k) is not None for k in ("dir_fd", "src_dir_fd", "dst_dir_fd")):
            raise NotImplementedError(f"{name}: dir_fd unavailable on this platform")
        if name == "open" and os.path.isdir(path):
            raise PermissionError(13, "a folder cannot be opened", path)
        return call(path, *args, **kwargs)
    return refusing


for name in ("open", "replace", "unlink"):
    setattr(os, name, windows_like(getattr(os, name), name))
"""

CHILD = """
import hashlib, os, sys, threading, time
from pathlib import Path

from proctor_app import platform
from proctor_app.config import config
from proctor_app.media.ingest.checks import ChunkUpload
from proctor_app.media.storage.local import LocalStorage
from tests.support.uploads import chunk_headers

assert platform.fcntl is None and platform.O_DIRECT == 0
assert not platform.FOLDER_DESCRIPTORS and not platform.SOCKET_PASSING
from proctor_app import runtime  # the app's composition root imports
assert config.ingest_processes == 0 and runtime.ingest_pool is None, "ingest in the app process"
assert config.live_relay_processes == 0 and runtime.relay_pool is None, "live relay in the app process"

# A socket with nothing to read says so; once its peer has closed it, it has input (an EOF).
import socket
ours, theirs = socket.socketpair()
assert not platform.has_input(ours.fileno())
theirs.close()
assert platform.has_input(ours.fileno())
ours.close()

# Durable writes by path, large ones too (no direct I/O), replacing a file whole.
root = Path(sys.argv[1])
files = LocalStorage(lambda: root)
for size in (1, 70_001, 3_000_001, 5):
    data = os.urandom(size)
    assert files.write_durably("raw/a/b", data).read_bytes() == data
assert sorted(p.name for p in (root / "raw/a").iterdir()) == ["b"], "no temp file left"

# A folder lock keeps out a second holder until it is released.
order = []
def second_holder():
    with files.locked_folder(root / "raw/a"):
        order.append("second")
with files.locked_folder(root / "raw/a"):
    other = threading.Thread(target=second_holder)
    other.start()
    time.sleep(0.5)
    order.append("first")
other.join(10)
assert order == ["first", "second"], order

# A held lock file refuses a non-blocking taker, and is free again once released.
lock = root / "run.lock"
with platform.locked_file(lock):
    try:
        with platform.locked_file(lock, blocking=False):
            raise AssertionError("taken twice")
    except BlockingIOError:
        pass
with platform.locked_file(lock, blocking=False):
    pass

# Chunks stored in the app process: the token checked, the bytes on disk, the rows committed.
attempt_id, token = int(sys.argv[2]), sys.argv[3]
for seq in range(3):
    body = os.urandom(100_000 + seq)
    h = chunk_headers(body, token, seq)
    ack = runtime.upload_store.store_chunk(token, ChunkUpload(
        attempt_id=attempt_id, stream="camera", segment=0, seq=seq, body=body,
        sha256=h["X-Content-SHA256"], start_ms=h["X-Chunk-Start-Ms"], end_ms=h["X-Chunk-End-Ms"],
        mime_type=h["Content-Type"], meta=h["X-Chunk-Meta"]))
    assert (ack.status, ack.contiguous_seq) == ("stored", seq), ack
    stored = next(config.storage_dir.rglob(f"raw/*/*/{attempt_id}/camera/0/{seq:08d}"))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == h["X-Content-SHA256"]
print("fallbacks ok")
"""


def _run_without_posix_calls(tmp_path, *args) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(WITHOUT_POSIX_CALLS))
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}")
    env.pop("PROCTOR_INGEST_PROCESSES", None)
    env.pop("PROCTOR_LIVE_RELAY_PROCESSES", None)
    return subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "storage"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_without_posix_calls_the_app_imports_writes_locks_and_stores_chunks(tmp_path):
    with session_scope() as db:
        grant = uploads.issue_upload_token(db, new_attempt(db))
    result = _run_without_posix_calls(tmp_path, str(grant.attempt_id), grant.token)
    assert result.returncode == 0 and "fallbacks ok" in result.stdout, result.stderr[-3000:]


def test_a_refused_token_is_still_refused_in_the_fallback_store(tmp_path):
    with session_scope() as db:
        attempt_id = new_attempt(db).id
    result = _run_without_posix_calls(tmp_path, str(attempt_id), "not-a-real-token")
    assert result.returncode != 0 and "token_unknown" in result.stderr, result.stderr[-3000:]
