"""The admin settings page: the settings form, the storage overview and retention runs."""

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any


from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.models import utcnow
from proctor_app.services import evidence, legal_holds, retention
from proctor_app.services.review import iso_time
from proctor_app.services.settings import (
    SPECS,
    SettingsError,
    from_form,
    get_settings,
    update_settings,
)
from proctor_app.state.auth import AuthState, requires

# A dry run can list thousands of attempts; the page shows the first ones and counts the rest.
PLAN_ROWS_SHOWN = 200
RECENT_RUNS = 10
_UNITS = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("bytes", 1)]


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def format_bytes(count: int) -> str:
    for unit, size in _UNITS:
        if count >= size and size > 1:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


@dataclass
class PlanRow:
    attempt_id: int
    exam: str
    candidate: str
    reason: str
    files: int
    size: str
    resumed: bool


@dataclass
class RunRow:
    at: str
    by: str
    attempts: int
    files: int
    freed: str
    errors: int


@dataclass
class HoldRow:
    attempt_id: int
    exam: str
    candidate: str
    ended: str


@dataclass
class Overview:
    total: str
    unit: str
    by_month: list[dict[str, Any]]
    by_exam: list[dict[str, Any]]
    next_run_at: str
    next_run_frees: str
    recent_runs: list[RunRow]
    holds: list[HoldRow]


def _chart(usage: dict[str, int], unit: str) -> list[dict[str, Any]]:
    scale = dict(_UNITS)[unit]
    return [{"label": label, "amount": round(count / scale, 3)} for label, count in usage.items()]


def _recent_runs(db) -> list[RunRow]:
    return [RunRow(at=iso_time(entry.at),
                   by="daily schedule" if entry.data.get("scheduled") else (name or "system"),
                   attempts=entry.data.get("attempts", 0), files=entry.data.get("files", 0),
                   freed=format_bytes(entry.data.get("bytes", 0)),
                   errors=len(entry.data.get("errors", {})))
            for entry, name in retention.recent_runs(db, RECENT_RUNS)]


def _overview(now: datetime) -> Overview:
    """Reads the whole storage folder: run it in a worker thread."""
    with session_scope() as db:
        usage = retention.storage_usage(db)
        next_run, due = retention.next_scheduled_run(db, now)
        recent = _recent_runs(db)
        holds = [HoldRow(attempt_id=h.attempt_id, exam=h.exam_title, candidate=h.candidate_email,
                         ended=iso_time(h.ended_at))
                 for h in legal_holds.legal_holds(db)]
    unit = next(u for u, size in _UNITS if max(usage.by_month.values(), default=0) >= size or size == 1)
    return Overview(
        total=format_bytes(usage.total_bytes), unit=unit, by_month=_chart(usage.by_month, unit),
        by_exam=_chart(usage.by_exam, unit), next_run_at=iso_time(next_run),
        next_run_frees=(f"{format_bytes(due.total_bytes)} ({_attempts(len(due.items))})"
                        if due.items else "nothing"),
        recent_runs=recent, holds=holds)


def _dry_run() -> retention.RunResult:
    with session_scope() as db:
        return retention.run_retention(db, utcnow(), dry_run=True)


def _run_now(user_id: int) -> retention.RunResult:
    with session_scope() as db:
        return retention.run_retention(db, utcnow(), user_id=user_id)


class AdminSettingsState(AuthState):
    # The form shows these; its inputs are uncontrolled, rebuilt from them when form_key changes.
    text_values: dict[str, str] = {}
    switch_values: dict[str, bool] = {}
    form_key: int = 0
    loaded: bool = False
    # An organisation's admin: settings are the install's, so the page only says who sets them.
    install_only: bool = False
    # setting key -> the full message, e.g. "Retention (days) must be between 1 and 3650."
    errors: dict[str, str] = {}
    notice: str = ""

    total_used: str = ""
    usage_unit: str = "bytes"
    usage_by_month: list[dict[str, Any]] = []
    usage_by_exam: list[dict[str, Any]] = []
    next_run_at: str = ""
    next_run_frees: str = ""
    recent_runs: list[RunRow] = []
    holds: list[HoldRow] = []
    hold_error: str = ""
    # The reason for placing or releasing a hold (required, audited).
    hold_reason: str = ""
    hold_form_key: int = 0

    plan_rows: list[PlanRow] = []
    plan_summary: str = ""
    running: bool = False
    run_summary: str = ""
    run_error: str = ""
    signing_key: str = ""
    signing_key_fingerprint: str = ""

    def _show_settings(self, values: dict[str, Any]) -> None:
        self.text_values = {k: str(v) for k, v in values.items() if not isinstance(v, bool)}
        self.switch_values = {k: v for k, v in values.items() if isinstance(v, bool)}
        self.form_key += 1
        self.loaded = True

    async def _refresh_overview(self) -> None:
        overview = await asyncio.to_thread(_overview, utcnow())
        self.total_used, self.usage_unit = overview.total, overview.unit
        self.usage_by_month, self.usage_by_exam = overview.by_month, overview.by_exam
        self.next_run_at, self.next_run_frees = overview.next_run_at, overview.next_run_frees
        self.recent_runs, self.holds = overview.recent_runs, overview.holds

    @requires(ADMIN)
    async def on_load(self):
        # Settings are the install's, not an organisation's: the page says so to other admins.
        self.install_only = not self._user.is_install_admin
        if self.install_only:
            return
        self.errors, self.notice = {}, ""
        self.plan_rows, self.plan_summary = [], ""
        self.run_summary = self.run_error = self.hold_error = ""
        with session_scope() as db:
            self._show_settings(get_settings(db))
        self.signing_key, self.signing_key_fingerprint = await asyncio.to_thread(evidence.signing_key)
        await self._refresh_overview()

    @requires(ADMIN, install_admin=True)
    async def save(self, form: dict):
        try:
            with session_scope() as db:
                before = get_settings(db)
                saved = update_settings(db, from_form(form), self._user.id)
        except SettingsError as exc:
            # The inputs keep what was typed, so it can be corrected.
            self.errors = {key: f"{SPECS[key].label} {problem}." for key, problem in exc.errors.items()}
            self.notice = ""
            return
        changed = [SPECS[key].label for key in SPECS if before[key] != saved[key]]
        self.errors = {}
        self.notice = f"Saved: {', '.join(changed)}." if changed else "Nothing changed."
        self._show_settings(saved)
        await self._refresh_overview()

    @requires(ADMIN, install_admin=True)
    async def dry_run(self):
        result = await asyncio.to_thread(_dry_run)
        items = result.plan.items
        self.plan_rows = [PlanRow(attempt_id=i.attempt_id, exam=i.exam_title, candidate=i.candidate_email,
                                  reason=i.reason, files=len(i.files), size=format_bytes(i.bytes),
                                  resumed=i.resumed)
                          for i in items[:PLAN_ROWS_SHOWN]]
        if not items:
            self.plan_summary = "Nothing is due: a run now would delete nothing."
        else:
            more = f" The first {PLAN_ROWS_SHOWN} are listed." if len(items) > PLAN_ROWS_SHOWN else ""
            self.plan_summary = (f"A run now would delete the media of {_attempts(len(items))}: "
                                 f"{result.plan.total_files} files, "
                                 f"{format_bytes(result.plan.total_bytes)}.{more}")

    @requires(ADMIN, install_admin=True)
    def start_run(self):
        # Shown at once; the run itself is the next event.
        self.running, self.run_summary, self.run_error = True, "", ""
        return AdminSettingsState.run_now

    @requires(ADMIN, install_admin=True)
    async def run_now(self):
        try:
            result = await asyncio.to_thread(_run_now, self._user.id)
        except retention.RetentionBusy as exc:
            self.run_error = str(exc)
            return
        finally:
            self.running = False
        self.run_summary = (f"Deleted the media of {_attempts(len(result.deleted_attempts))}: "
                            f"{result.files_deleted} files, {format_bytes(result.bytes_freed)} freed.")
        if result.errors:
            self.run_error = (f"{_attempts(len(result.errors))} could not be finished (see the server "
                              f"log); the next run tries again: "
                              + "; ".join(f"attempt {k}: {v}" for k, v in result.errors.items()))
        self.plan_rows, self.plan_summary = [], ""
        await self._refresh_overview()

    async def _set_hold(self, attempt_id: int, on: bool) -> bool:
        try:
            with session_scope() as db:
                legal_holds.change_legal_hold(db, attempt_id, on, self.hold_reason, self._user)
        except legal_holds.LegalHoldError as exc:
            self.hold_error = str(exc)
            return False
        self.hold_error, self.hold_reason = "", ""
        await self._refresh_overview()
        return True

    @requires(ADMIN, install_admin=True)
    def set_hold_reason(self, reason: str):
        self.hold_reason = reason

    @requires(ADMIN, install_admin=True)
    async def place_hold(self, form: dict):
        entered = str(form.get("attempt_id", "")).strip().lstrip("#")
        if not entered.isdigit():
            self.hold_error = "Enter the number of the attempt to hold."
            return
        if await self._set_hold(int(entered), True):
            self.hold_form_key += 1

    @requires(ADMIN, install_admin=True)
    async def release_hold(self, attempt_id: int):
        """Released with the reason typed in the hold form's reason field."""
        await self._set_hold(int(attempt_id), False)
