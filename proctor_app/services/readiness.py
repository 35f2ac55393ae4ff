"""Readiness: whether this app process can do its work now: the database answers, the storage
folder takes a file, its ingest processes are up, and its job worker goes round its loop."""

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from proctor_app.db import session_scope
from proctor_app.media.ingest.processes import IngestPool
from proctor_app.media.jobs.worker import Worker

# The worker's loop goes round every POLL_S (a fraction of a second); silent this long, it is
# stuck or stopped.
WORKER_SILENT_S = 30.0


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


@dataclass
class Readiness:
    storage_root: Callable[[], Path]
    ingest_pool: IngestPool | None = None
    worker: Worker | None = None  # None: jobs run in processes of their own
    monotonic: Callable[[], float] = time.monotonic

    def database(self) -> Check:
        with session_scope() as db:
            db.exec(text("SELECT 1"))
        return Check(True, "answers")

    def storage(self) -> Check:
        root = self.storage_root()
        root.mkdir(parents=True, exist_ok=True)  # made at the first upload otherwise
        with tempfile.NamedTemporaryFile(dir=root, prefix=".ready-") as probe:
            probe.write(b"ready")
            probe.flush()
            os.fsync(probe.fileno())
        return Check(True, "writable")

    def ingest(self) -> Check:
        if self.ingest_pool is None:
            return Check(True, "chunks are stored in the app process")
        alive = sum(1 for p in self.ingest_pool.processes if p.alive)
        return Check(alive > 0, f"{alive} of {self.ingest_pool.count} ingest processes alive")

    def job_worker(self) -> Check:
        if self.worker is None:
            return Check(True, "none in this process (PROCTOR_IN_APP_WORKER=0)")
        round_at = self.worker.round_at
        if round_at is None:
            return Check(False, "not running")
        silent = self.monotonic() - round_at
        if silent > WORKER_SILENT_S:
            return Check(False, f"no round of its loop for {silent:.0f} s")
        return Check(True, "running")

    def run(self) -> dict[str, Check]:
        """Every check (in a thread: they touch the database and the disk); a check that raises
        fails with the error."""
        results = {}
        for name, check in (("database", self.database), ("storage", self.storage),
                            ("ingest", self.ingest), ("job_worker", self.job_worker)):
            try:
                results[name] = check()
            except Exception as exc:
                results[name] = Check(False, f"{type(exc).__name__}: {exc}")
        return results
