"""Admin settings: defaults, validation and storage. Every change is written to the audit log."""

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from sqlmodel import Session, select

from proctor_app.clock import Clock, system_clock
from proctor_app.db import SessionFactory, session_scope
from proctor_app.models import AuditLog, Setting, utcnow


@dataclass(frozen=True)
class SettingSpec:
    default: Any
    label: str
    check: Callable[[Any], str | None]


def _int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        if not lo <= value <= hi:
            return f"must be between {lo} and {hi}"
        return None
    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be on or off"


def _time_of_day(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return "must be a time like 03:30"
    hh, mm = value[:2], value[3:]
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        return "must be a time like 03:30"
    return None


def _resolution(lo: tuple[int, int], hi: tuple[int, int]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        found = re.fullmatch(r"(\d{2,5})x(\d{2,5})", value) if isinstance(value, str) else None
        if found is None:
            return "must be a size like 640x480"
        if not (lo[0] <= int(found[1]) <= hi[0] and lo[1] <= int(found[2]) <= hi[1]):
            return f"must be between {lo[0]}x{lo[1]} and {hi[0]}x{hi[1]}"
        return None
    return check


SPECS: dict[str, SettingSpec] = {
    "retention_days": SettingSpec(30, "Retention (days)", _int_range(1, 3650)),
    "retention_run_at": SettingSpec("03:30", "Daily retention run (UTC)", _time_of_day),
    "live_video_enabled": SettingSpec(True, "Live video", _boolean),
    "recording_enabled": SettingSpec(True, "Recording", _boolean),
    "screen_recording_enabled": SettingSpec(True, "Screen recording", _boolean),
    "recording_required_default": SettingSpec(True, "Recording required by default", _boolean),
    "chunk_interval_s": SettingSpec(3, "Chunk interval (seconds)", _int_range(1, 30)),
    "camera_bitrate_kbps": SettingSpec(600, "Camera bitrate (kbit/s)", _int_range(100, 8000)),
    "screen_bitrate_kbps": SettingSpec(800, "Screen bitrate (kbit/s)", _int_range(100, 8000)),
    "snapshot_interval_s": SettingSpec(60, "Snapshot interval (seconds)", _int_range(5, 3600)),
    "camera_resolution": SettingSpec("640x480", "Camera resolution", _resolution((160, 120), (1920, 1080))),
    "screen_resolution": SettingSpec("1280x720", "Screen resolution", _resolution((640, 360), (3840, 2160))),
    "screen_frame_rate": SettingSpec(5, "Screen frames per second", _int_range(1, 30)),
    "max_chunk_mb": SettingSpec(20, "Largest chunk accepted (MB)", _int_range(1, 500)),
    "processing_concurrency": SettingSpec(1, "Processing jobs at once", _int_range(1, 16)),
    "keep_raw_chunks": SettingSpec(False, "Keep raw chunks after processing", _boolean),
    "live_offline_after_s": SettingSpec(20, "Offline after (seconds without a publisher)", _int_range(3, 600)),
    "webhook_expiring_notice_days": SettingSpec(3, "media.expiring webhook (days before deletion, 0: none)",
                                                _int_range(0, 365)),
}


class SettingsError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{SPECS[k].label} {v}" if k in SPECS else f"{k}: {v}"
                                   for k, v in errors.items()))
        self.errors = errors


def get_settings(db: Session) -> dict[str, Any]:
    values = {key: spec.default for key, spec in SPECS.items()}
    for row in db.exec(select(Setting)):
        if row.key in SPECS:
            values[row.key] = row.value
    return values


def get_setting(db: Session, key: str) -> Any:
    row = db.get(Setting, key)
    return SPECS[key].default if row is None else row.value


def validate(changes: dict[str, Any]) -> dict[str, str]:
    errors = {}
    for key, value in changes.items():
        spec = SPECS.get(key)
        if spec is None:
            errors[key] = "is not a setting"
            continue
        problem = spec.check(value)
        if problem:
            errors[key] = problem
    return errors


def from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting's value from a submitted form, typed like its default: a switch is on when
    submitted as on/true; text that is not a whole number stays text, for validation to report."""
    values: dict[str, Any] = {}
    for key, spec in SPECS.items():
        raw = form.get(key)
        if isinstance(spec.default, bool):
            values[key] = raw is True or str(raw).strip().lower() in ("on", "true")
            continue
        entered = "" if raw is None else str(raw).strip()
        if isinstance(spec.default, int):
            values[key] = int(entered) if re.fullmatch(r"[+-]?\d{1,100}", entered) else entered
        else:
            values[key] = entered
    return values


def update_settings(db: Session, changes: dict[str, Any], user_id: int | None) -> dict[str, Any]:
    """Validate all changes first, then save them together; raises SettingsError on any bad value."""
    errors = validate(changes)
    if errors:
        raise SettingsError(errors)
    current = get_settings(db)
    for key, value in changes.items():
        if current[key] == value:
            continue
        row = db.get(Setting, key) or Setting(key=key, value=value)
        row.value = value
        row.updated_at = utcnow()
        row.updated_by = user_id
        db.add(row)
        db.add(AuditLog(user_id=user_id, action="setting_changed", target=key,
                        data={"old": current[key], "new": value}))
    db.flush()
    settings_cache.invalidate()
    return get_settings(db)


class SettingsCache:
    """The settings as last read, read again once they are `ttl_s` old: uploads, the live relay and
    the job worker ask on every request. A change saved in another process is seen within ttl_s."""

    def __init__(self, sessions: SessionFactory = session_scope, clock: Clock = system_clock,
                 ttl_s: float = 5.0):
        self.sessions, self.clock, self.ttl_s = sessions, clock, ttl_s
        self._read: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def fresh(self) -> dict[str, Any] | None:
        """The settings if read within ttl_s, without touching the database; else None."""
        read = self._read
        return read[1] if read and self.clock.monotonic() - read[0] <= self.ttl_s else None

    def get(self) -> dict[str, Any]:
        values = self.fresh()
        if values is None:
            with self._lock:  # threads that find them stale together read them once
                values = self.fresh()
                if values is None:
                    with self.sessions() as db:
                        values = get_settings(db)
                    self._read = (self.clock.monotonic(), values)
        return values

    def __call__(self) -> dict[str, Any]:
        return self.get()

    def invalidate(self) -> None:
        self._read = None


settings_cache = SettingsCache()
