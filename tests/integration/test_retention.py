"""The retention job, with a controllable clock, on a database and storage folder of each test's
own (the shared app's data is not touched, but for the schedule's time setting, briefly): real
files, real SQLite and PostgreSQL, real locks, a real crash (SIGKILL) in the middle of a run."""

import dataclasses
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from proctor_app.clock import system_clock
from proctor_app.config import config
from proctor_app.db import engine_for, migrate, session_scope
from proctor_app.media.retention import run as retention_run
from proctor_app.media.retention import usage
from proctor_app.media.retention.run import (
    ADVISORY_LOCK_CLASS,
    RetentionBusy,
    _mark_expiring,
    exclusive_run,
    next_daily_run,
)
from proctor_app.media.storage import layout, local, storage
from proctor_app.models import (
    Attempt,
    AuditLog,
    Chunk,
    JobStatus,
    Recording,
    RecordingStatus,
    Role,
    Segment,
    Setting,
    Snapshot,
    utcnow,
)
from proctor_app.schedule import RETENTION_JOB_ID, Schedule
from proctor_app.services import legal_holds, retention
from proctor_app.services.settings import SettingsError, from_form, get_settings, update_settings
from tests.support.factories import as_current, make_user
from tests.support.retention_media import NOW, Made, make_media_attempt, write_stored
from tests.support.server import ROOT

_template_dir = Path(tempfile.mkdtemp(prefix="retention-template-"))


def _template_db() -> Path:
    """A migrated empty database, copied for each test: migrating every time would be slow."""
    path = _template_dir / "proctor.db"
    if not path.exists():
        migrate(f"sqlite:///{path}")
    return path


@contextmanager
def private_store(base: Path) -> Iterator[Engine]:
    """A fresh database and storage folder under `base`, laid out like a data folder
    (base/proctor.db, base/storage); the media code's storage folder points there meanwhile."""
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(_template_db(), base / "proctor.db")
    engine = engine_for(f"sqlite:///{base / 'proctor.db'}")
    own = dataclasses.replace(config, data_dir=base, storage_dir=base / "storage")
    with mock.patch.object(local, "config", own), mock.patch.object(retention_run, "config", own):
        try:
            yield engine
        finally:
            engine.dispose()


def disk_contents() -> dict[str, str]:
    """Every file in the storage folder with a hash of its bytes."""
    root = storage.root()
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def db_rows(db: Session) -> dict:
    """The rows retention may change, as plain values."""
    db.expire_all()
    return {
        "attempts": {a.id: (a.media_expired_at, a.media_deleted_at, a.legal_hold)
                     for a in db.exec(select(Attempt))},
        "recordings": {r.id: (r.status, r.mp4_path, r.poster_path, r.sprite_path, r.raw_deleted_at,
                              r.expired_at) for r in db.exec(select(Recording))},
        "snapshots": sorted(db.exec(select(Snapshot.id))),
        "chunks": sorted(db.exec(select(Chunk.id))),
    }


def assert_db_agrees_with_disk(db: Session) -> None:
    """Every file the database says exists does, and expired attempts have nothing left."""
    db.expire_all()
    for rec in db.exec(select(Recording)):
        for path in (rec.mp4_path, rec.poster_path, rec.sprite_path):
            assert not path or storage.absolute(path).is_file(), path
        if rec.raw_deleted_at is None:
            for path in db.exec(select(Chunk.path).join(Segment).where(Segment.recording_id == rec.id)):
                assert storage.absolute(path).is_file(), path
    for snap in db.exec(select(Snapshot)):
        assert storage.absolute(snap.path).is_file(), snap.path
    for attempt in db.exec(select(Attempt).where(Attempt.media_expired_at.is_not(None))):
        assert attempt.media_deleted_at is not None, f"attempt {attempt.id} left half-deleted"
        for folder in layout.attempt_folders(attempt.id, attempt.started_at):
            assert not storage.absolute(folder).exists(), folder


def set_retention_days(db: Session, days: int) -> None:
    update_settings(db, {"retention_days": days}, None)
    db.commit()


# ---------------------------------------------------------------------------------------------
# Exactly the expired set


attempt_specs = st.fixed_dictionaries({
    # Hours past the retention boundary (negative: not yet due); mostly near it, where mistakes hide.
    "past_boundary_h": st.one_of(st.integers(-2, 2), st.integers(-2000, 2000)),
    "ended": st.booleans(),
    "hold": st.booleans(),
    "rec_status": st.sampled_from([RecordingStatus.completed, RecordingStatus.partial,
                                   RecordingStatus.failed, RecordingStatus.processing,
                                   RecordingStatus.in_progress]),
    "job": st.sampled_from([None, JobStatus.queued, JobStatus.running, JobStatus.done,
                            JobStatus.failed]),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(retention_days=st.integers(1, 60), specs=st.lists(attempt_specs, min_size=1, max_size=5))
def test_exactly_the_expired_set_is_deleted(retention_days, specs):
    with tempfile.TemporaryDirectory() as tmp, private_store(Path(tmp)) as engine:
        with Session(engine, expire_on_commit=False) as db:
            set_retention_days(db, retention_days)
            made, expected = {}, set()
            for spec in specs:
                age = timedelta(days=retention_days, hours=spec["past_boundary_h"])
                m = make_media_attempt(db, ended_ago=max(age, timedelta(0)), ended=spec["ended"],
                                 hold=spec["hold"], rec_status=spec["rec_status"], job=spec["job"])
                made[m.attempt_id] = m
                if (age >= timedelta(days=retention_days) and not spec["hold"]
                        and spec["rec_status"] != RecordingStatus.processing
                        and spec["job"] not in (JobStatus.queued, JobStatus.running)):
                    expected.add(m.attempt_id)
            write_stored("other/unrelated.bin", b"not media of an attempt")
            disk_before, rows_before = disk_contents(), db_rows(db)

            dry = retention.run_retention(db, NOW, dry_run=True)
            assert {item.attempt_id for item in dry.plan.items} == expected
            expected_files = {f for a in expected for f in made[a].files}
            assert dry.plan.total_bytes == sum(storage.absolute(f).stat().st_size for f in expected_files)
            assert disk_contents() == disk_before and db_rows(db) == rows_before

            result = retention.run_retention(db, NOW)
            assert set(result.deleted_attempts) == expected and not result.errors
            assert result.files_deleted == len(expected_files)
            assert disk_contents() == {p: h for p, h in disk_before.items() if p not in expected_files}

            rows = db_rows(db)
            for attempt_id in made:
                attempt = db.get(Attempt, attempt_id)
                rec = db.exec(select(Recording).where(Recording.attempt_id == attempt_id)).one()
                snapshots = db.exec(select(Snapshot).where(Snapshot.attempt_id == attempt_id)).all()
                if attempt_id in expected:
                    assert attempt.media_expired_at == NOW and attempt.media_deleted_at == NOW
                    assert rec.status == RecordingStatus.expired and rec.expired_at == NOW
                    assert "retention period of" in rec.expired_reason
                    assert ("abandoned" in rec.expired_reason) == (attempt.ended_at is None)
                    assert (rec.mp4_path, rec.poster_path, rec.sprite_path) == ("", "", "")
                    assert rec.raw_deleted_at == NOW and snapshots == []
                else:
                    assert rows["attempts"][attempt_id] == rows_before["attempts"][attempt_id]
                    assert rows["recordings"][rec.id] == rows_before["recordings"][rec.id]
                    assert len(snapshots) == 2
            # The record stays: chunks' metadata rows, the attempt, its recording.
            assert rows["chunks"] == rows_before["chunks"]
            logged = db.exec(select(AuditLog.target).where(AuditLog.action == "media_deleted")).all()
            assert sorted(logged) == sorted(f"attempt:{a}" for a in expected)
            assert_db_agrees_with_disk(db)

            # Idempotent: nothing is due any more, and a second run changes nothing.
            assert retention.retention_plan(db, NOW).items == []
            again = retention.run_retention(db, NOW)
            assert again.deleted_attempts == [] and disk_contents() == {
                p: h for p, h in disk_before.items() if p not in expected_files}


def test_hold_and_processing_survive_and_expire_once_released(tmp_path):
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 30)
        held = make_media_attempt(db, ended_ago=timedelta(days=400), hold=True)
        processing = make_media_attempt(db, ended_ago=timedelta(days=400), rec_status=RecordingStatus.processing)
        queued = make_media_attempt(db, ended_ago=timedelta(days=400), rec_status=RecordingStatus.failed,
                              job=JobStatus.queued)
        young = make_media_attempt(db, ended_ago=timedelta(days=29, hours=23))
        due = make_media_attempt(db, ended_ago=timedelta(days=30))
        result = retention.run_retention(db, NOW)
        assert result.deleted_attempts == [due.attempt_id]
        for kept in (held, processing, queued, young):
            assert all(storage.absolute(f).is_file() for f in kept.files)

        admin = make_user(db, role=Role.admin, email="admin@example.com", name="A")
        db.add(admin)
        db.commit()
        legal_holds.change_legal_hold(db, held.attempt_id, False, "appeal", as_current(admin))
        db.commit()
        assert [r.action for r in db.exec(select(AuditLog).where(
            AuditLog.target == f"attempt:{held.attempt_id}"))] == ["legal_hold_released"]
        later = retention.run_retention(db, NOW + timedelta(minutes=1))
        assert later.deleted_attempts == [held.attempt_id]
        assert not any(storage.absolute(f).exists() for f in held.files)
        with pytest.raises(legal_holds.LegalHoldError, match="already deleted"):
            legal_holds.change_legal_hold(db, held.attempt_id, True, "appeal", as_current(admin))
        with pytest.raises(legal_holds.LegalHoldError, match="No such attempt"):
            legal_holds.change_legal_hold(db, 999_999, True, "appeal", as_current(admin))
        assert_db_agrees_with_disk(db)


def test_a_hold_set_after_planning_is_respected(tmp_path):
    """The plan is only a plan: each attempt is checked again, under its row lock, before it goes."""
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 10)
        made = make_media_attempt(db, ended_ago=timedelta(days=20))
        admin = make_user(db, role=Role.admin, email="admin@example.com", name="A")
        db.add(admin)
        db.commit()
        todo = retention.retention_plan(db, NOW)
        db.commit()
        with Session(engine) as other:
            legal_holds.change_legal_hold(other, made.attempt_id, True, "appeal", as_current(admin))
            other.commit()
        assert _mark_expiring(db, todo.items[0], NOW) is False
        assert all(storage.absolute(f).is_file() for f in made.files)
        assert retention.run_retention(db, NOW).deleted_attempts == []


# ---------------------------------------------------------------------------------------------
# Interruptions and faults


_RUN_IN_CHILD = """
import sys
from datetime import datetime
from proctor_app.db import session_scope
from proctor_app.services.retention import run_retention
with session_scope() as db:
    run_retention(db, datetime.fromisoformat(sys.argv[1]))
"""


def _child_env(base: Path) -> dict[str, str]:
    """The environment of another process working on the private store under `base`."""
    env = dict(os.environ, PROCTOR_DATA_DIR=str(base), PROCTOR_STORAGE_DIR=str(base / "storage"))
    env.pop("PROCTOR_DATABASE_URL", None)
    return env


def _limbo(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute(
        "SELECT id FROM attempts WHERE media_expired_at IS NOT NULL AND media_deleted_at IS NULL")]


def test_a_run_killed_midway_is_completed_by_the_next(tmp_path):
    """A child process runs retention; it is stopped dead (SIGKILL) after deleting one attempt's
    files and before recording that (the test holds the database's write lock meanwhile)."""
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 30)
        # Many chunks each, so deleting one attempt's files takes long enough to catch.
        made = [make_media_attempt(db, ended_ago=timedelta(days=40 + i), chunks=1500) for i in range(3)]
        child = subprocess.Popen([sys.executable, "-c", _RUN_IN_CHILD, NOW.isoformat()], cwd=ROOT,
                                 env=_child_env(tmp_path))
        watcher = sqlite3.connect(tmp_path / "proctor.db", timeout=30, isolation_level=None)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert child.poll() is None, "the run finished before it could be interrupted"
                assert time.monotonic() < deadline
                if _limbo(watcher):
                    watcher.execute("BEGIN IMMEDIATE")  # the child can no longer commit
                    limbo = _limbo(watcher)
                    if limbo:
                        break
                    watcher.execute("ROLLBACK")
                time.sleep(0.001)
            (victim,) = limbo
            victim_attempt = db.get(Attempt, victim)
            folders = [storage.absolute(f) for f in layout.attempt_folders(victim_attempt.id, victim_attempt.started_at)]
            while any(f.exists() for f in folders):  # the child deletes them, then waits for the lock
                assert time.monotonic() < deadline and child.poll() is None
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if watcher.in_transaction:
                watcher.execute("ROLLBACK")
            watcher.close()

        # The crash left the database promising files that are gone.
        db.expire_all()
        rec = db.exec(select(Recording).where(Recording.attempt_id == victim)).one()
        assert rec.status == RecordingStatus.expired and rec.mp4_path
        assert not storage.absolute(rec.mp4_path).exists()
        resumed = [i for i in retention.retention_plan(db, NOW).items if i.resumed]
        assert [i.attempt_id for i in resumed] == [victim]

        result = retention.run_retention(db, NOW + timedelta(hours=1))
        assert not result.errors and victim in result.deleted_attempts
        db.expire_all()
        for m in made:
            assert db.get(Attempt, m.attempt_id).media_deleted_at is not None
            assert not any(storage.absolute(f).exists() for f in m.files)
        assert_db_agrees_with_disk(db)
        entry = db.exec(select(AuditLog).where(AuditLog.action == "media_deleted",
                                               AuditLog.target == f"attempt:{victim}")).one()
        assert entry.data["resumed"] is True


def test_a_file_that_cannot_be_deleted_leaves_its_attempt_for_the_next_run(tmp_path):
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 30)
        blocked = make_media_attempt(db, ended_ago=timedelta(days=50))
        fine = make_media_attempt(db, ended_ago=timedelta(days=50))
        rec = db.exec(select(Recording).where(Recording.attempt_id == blocked.attempt_id)).one()
        # A stored path outside the attempt's folders is taken by a non-empty folder: unlinking it
        # fails with a real OS error.
        rec.poster_path = f"posters/{blocked.attempt_id}.jpg"
        db.add(rec)
        db.commit()
        poster = storage.absolute(rec.poster_path)
        (poster / "inside").mkdir(parents=True)

        result = retention.run_retention(db, NOW)
        assert result.deleted_attempts == [fine.attempt_id]
        assert "IsADirectoryError" in result.errors[blocked.attempt_id]
        db.expire_all()
        assert db.get(Attempt, blocked.attempt_id).media_deleted_at is None
        assert db.exec(select(Recording.status).where(
            Recording.attempt_id == blocked.attempt_id)).one() == RecordingStatus.expired
        run_log = db.exec(select(AuditLog).where(AuditLog.action == "retention_run")).one()
        assert str(blocked.attempt_id) in run_log.data["errors"]

        shutil.rmtree(poster)  # an operator clears the obstacle
        result = retention.run_retention(db, NOW + timedelta(days=1))
        assert result.deleted_attempts == [blocked.attempt_id] and not result.errors
        assert not any(storage.absolute(f).exists() for f in blocked.files)
        assert_db_agrees_with_disk(db)


def test_a_path_outside_storage_is_never_deleted(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    with private_store(tmp_path / "data") as engine, Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 1)
        made = make_media_attempt(db, ended_ago=timedelta(days=5))
        rec = db.exec(select(Recording).where(Recording.attempt_id == made.attempt_id)).one()
        rec.sprite_path = "../../precious.txt"
        db.add(rec)
        db.commit()
        result = retention.run_retention(db, NOW)
        assert result.deleted_attempts == [made.attempt_id]
    assert outside.read_text() == "keep me"


# ---------------------------------------------------------------------------------------------
# One runner at a time


def test_sqlite_lock_admits_one_run_at_a_time(tmp_path):
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 30)
        made = make_media_attempt(db, ended_ago=timedelta(days=31))
        with Session(engine) as holder, exclusive_run(holder):
            with pytest.raises(RetentionBusy):
                retention.run_retention(db, NOW)
            # Another process is refused as well.
            child = subprocess.run([sys.executable, "-c", _RUN_IN_CHILD, NOW.isoformat()], cwd=ROOT,
                                   env=_child_env(tmp_path), capture_output=True, text=True, timeout=120)
            assert child.returncode != 0 and "RetentionBusy" in child.stderr
            assert all(storage.absolute(f).is_file() for f in made.files)
            # A dry run needs no lock.
            dry = retention.run_retention(db, NOW, dry_run=True)
            assert [i.attempt_id for i in dry.plan.items] == [made.attempt_id]
        assert retention.run_retention(db, NOW).deleted_attempts == [made.attempt_id]


def test_scheduled_runs_of_several_processes_do_the_day_once(tmp_path):
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        first = retention.run_retention(db, NOW, scheduled=True)
        second = retention.run_retention(db, NOW + timedelta(seconds=5), scheduled=True)
        manual = retention.run_retention(db, NOW + timedelta(seconds=6))
        assert not first.skipped and second.skipped and not manual.skipped
        tomorrow = retention.run_retention(db, NOW + timedelta(days=1), scheduled=True)
        assert not tomorrow.skipped
        runs = db.exec(select(AuditLog.data).where(AuditLog.action == "retention_run")
                       .order_by(AuditLog.id)).all()
        assert [r["scheduled"] for r in runs] == [True, False, True]


@pytest.mark.postgres
def test_postgres_advisory_lock_admits_one_run_and_dies_with_its_holder(pg_url, tmp_path):
    engine = engine_for(pg_url)
    storage_dir = tmp_path / "storage"
    own = dataclasses.replace(config, storage_dir=storage_dir)
    with mock.patch.object(local, "config", own), Session(engine, expire_on_commit=False) as db:
        set_retention_days(db, 30)
        made = make_media_attempt(db, ended_ago=timedelta(days=31))
        held = make_media_attempt(db, ended_ago=timedelta(days=31), hold=True)

        with Session(engine) as holder, exclusive_run(holder):
            with pytest.raises(RetentionBusy):
                retention.run_retention(db, NOW)
        assert all(storage.absolute(f).is_file() for f in made.files)

        # Two runs started together: the attempt is deleted once, by one of them.
        barrier, outcomes = threading.Barrier(2), []

        def run_now():
            barrier.wait(10)
            with Session(engine) as own_db:
                try:
                    outcomes.append(retention.run_retention(own_db, NOW).deleted_attempts)
                except RetentionBusy:
                    outcomes.append("busy")

        threads = [threading.Thread(target=run_now) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [made.attempt_id] in outcomes and len(outcomes) == 2
        assert outcomes.count([made.attempt_id]) == 1
        assert not any(storage.absolute(f).exists() for f in made.files)
        assert all(storage.absolute(f).is_file() for f in held.files)
        assert len(db.exec(select(AuditLog).where(AuditLog.action == "media_deleted")).all()) == 1

        # A holder that dies (its connection closes) frees the lock.
        later = make_media_attempt(db, ended_ago=timedelta(days=31))
        raw = engine.raw_connection()
        cur = raw.cursor()
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))",
                    (ADVISORY_LOCK_CLASS,))
        assert cur.fetchone()[0] is True
        raw.commit()
        with pytest.raises(RetentionBusy):
            retention.run_retention(db, NOW)
        raw.invalidate()  # the connection is closed, as when its process is killed
        assert retention.run_retention(db, NOW).deleted_attempts == [later.attempt_id]
        assert all(storage.absolute(f).is_file() for f in held.files)
        assert_db_agrees_with_disk(db)


# ---------------------------------------------------------------------------------------------
# Storage overview


def test_usage_by_month_and_exam_counts_every_stored_byte(tmp_path):
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        old = make_media_attempt(db, ended_ago=timedelta(days=70))
        new = make_media_attempt(db, ended_ago=timedelta(days=1))
        write_stored("other/unrelated.bin", b"x" * 7)
        files = list(usage.stored_files())
        sizes = {f: storage.absolute(f).stat().st_size for m in (old, new) for f in m.files}

        def month(m: Made) -> str:
            return f"{db.get(Attempt, m.attempt_id).started_at:%Y-%m}"

        by_month = usage.usage_by_month(files)
        assert by_month[usage.NOT_AN_ATTEMPT] == 7
        assert by_month[month(old)] == sum(sizes[f] for f in old.files)
        assert by_month[month(new)] == sum(sizes[f] for f in new.files)
        assert usage.usage_by_exam(db, files) == {"Retention exam": sum(sizes.values()),
                                                      usage.NOT_AN_ATTEMPT: 7}
        assert sum(by_month.values()) == sum(f.stat().st_size for f in storage.root().rglob("*")
                                             if f.is_file())


# ---------------------------------------------------------------------------------------------
# Settings


def test_settings_validation_rejects_bad_values_with_clear_messages(tmp_path):
    with private_store(tmp_path) as engine, Session(engine, expire_on_commit=False) as db:
        form = {key: str(value) for key, value in get_settings(db).items() if not isinstance(value, bool)}
        bad = dict(form, retention_days="0", chunk_interval_s="2.5", retention_run_at="25:00",
                   camera_bitrate_kbps="", processing_concurrency="99999999999999999999")
        with pytest.raises(SettingsError) as caught:
            update_settings(db, from_form(bad), user_id=None)
        assert caught.value.errors == {
            "retention_days": "must be between 1 and 3650",
            "chunk_interval_s": "must be a whole number",
            "retention_run_at": "must be a time like 03:30",
            "camera_bitrate_kbps": "must be a whole number",
            "processing_concurrency": "must be between 1 and 16",
        }
        assert "Retention (days) must be between 1 and 3650" in str(caught.value)
        db.rollback()
        assert db.exec(select(Setting)).all() == [] and db.exec(select(AuditLog)).all() == []
        with pytest.raises(SettingsError, match="is not a setting"):
            update_settings(db, {"retention_dayz": 3}, user_id=None)
        with pytest.raises(SettingsError, match="must be between 1 and 3650"):
            update_settings(db, {"retention_days": 3651}, user_id=None)
        with pytest.raises(SettingsError, match="must be on or off"):
            update_settings(db, {"recording_enabled": "yes"}, user_id=None)

        # Switches are on when submitted, off when absent; unchanged values are not logged.
        good = dict(form, retention_days=" 45 ", recording_enabled="on", live_video_enabled="on",
                    screen_recording_enabled="on", recording_required_default="on")
        values = update_settings(db, from_form(good), user_id=None)
        db.commit()
        assert values["retention_days"] == 45 and values["keep_raw_chunks"] is False
        changes = [(a.target, a.data) for a in db.exec(select(AuditLog))]
        assert changes == [("retention_days", {"old": 30, "new": 45})]


# ---------------------------------------------------------------------------------------------
# The daily schedule


async def test_daily_run_follows_the_time_setting(demo_db):
    """The schedule the lifespan starts: at the stored time, and moved when an admin changes it."""
    with session_scope() as db:
        before = get_settings(db)["retention_run_at"]
    # Far from now, so the app server's own schedule does not fire a run meanwhile.
    moved = f"{(utcnow() + timedelta(hours=12)).hour:02d}:07"
    schedule = Schedule(system_clock)
    schedule.start()
    try:
        job = schedule.scheduler.get_job(RETENTION_JOB_ID)
        assert job.next_run_time == next_daily_run(before, utcnow())
        with session_scope() as db:
            update_settings(db, {"retention_run_at": moved}, None)
        await schedule.follow_setting()
        job = schedule.scheduler.get_job(RETENTION_JOB_ID)
        assert job.next_run_time == next_daily_run(moved, utcnow())
    finally:
        schedule.shutdown()
        with session_scope() as db:
            update_settings(db, {"retention_run_at": before}, None)
