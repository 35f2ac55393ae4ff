"""/proctor: a live tile for every attempt in progress the user may watch, and a focused view.

Live / Reconnecting / Offline is decided by the relay on the server. While the page is open, a
background task waits on the relay's change notification (and refreshes the database-backed
details every few seconds) and pushes the result through state: the browser never polls.
The same task raises the proctor's alerts (services/proctor_alerts.py) on every status change and
every ALERT_CHECK_S, and toasts the new ones (with a beep when the proctor turned sound on).
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

import reflex as rx

from proctor_app.auth.roles import LIVE_VIEW
from proctor_app.auth.sessions import CurrentUser
from proctor_app.db import session_scope
from proctor_app.models import ProctoringEvent, Severity, utcnow
from proctor_app.runtime import clock, ice_servers, relay
from proctor_app.services import live, proctor_alerts, proctoring_texts
from proctor_app.services.live import LiveStatus
from proctor_app.services.proctoring_texts import describe_event
from proctor_app.services.review import format_clock
from proctor_app.state.auth import AuthState, requires

PAGE_SIZE = 25
REFRESH_S = 5.0
# How often the grid looks for critical events (status changes wake it at once): alerts within 5 s.
ALERT_CHECK_S = 2.0
ALERT_TOAST_MS = 15000
SOUND_ON = "on"
# Assets/alert_sound.js: a short Web Audio beep.
BEEP = "import('/alert_sound.js').then((sound) => sound.beep())"
EVENTS_PER_TILE = 3
FOCUS_EVENTS = 30
ANY = "any"
STATUS_LABELS = {LiveStatus.live: "Live", LiveStatus.reconnecting: "Reconnecting",
                 LiveStatus.offline: "Offline"}
STATUS_COLORS = {LiveStatus.live: "green", LiveStatus.reconnecting: "amber",
                 LiveStatus.offline: "gray"}
SEVERITY_COLORS = {Severity.info: "gray", Severity.warning: "amber", Severity.critical: "red"}
HEALTH_COLORS = {"uploaded": "green", "pending": "amber", "failed": "red", "not started": "gray"}


def view_url(attempt_id: int, stream: str) -> str:
    return f"/api/live/attempts/{attempt_id}/streams/{stream}/view"


@dataclass
class EventLine:
    at: str
    text: str
    color: str


@dataclass
class AlertLine:
    id: int
    attempt_id: int
    text: str
    at: str


@dataclass
class HealthLine:
    stream: str
    state: str
    detail: str
    color: str


@dataclass
class Tile:
    attempt_id: int = 0
    candidate: str = ""
    exam: str = ""
    elapsed: str = ""
    left: str = ""
    status: str = LiveStatus.offline
    status_label: str = ""
    status_color: str = "gray"
    status_for: str = ""  # how long the status has held, when it is not live
    # WHEP URLs; "" when the attempt does not publish that stream (live video off).
    tile_src: str = ""
    camera_src: str = ""
    screen_src: str = ""
    recordings: list[HealthLine] | None = None
    events: list[EventLine] | None = None


@dataclass(frozen=True)
class _Query:
    user: CurrentUser
    exam_id: int | None
    search: str
    status: str
    page: int
    focus_id: int


def _event_lines(events: list[ProctoringEvent]) -> list[EventLine]:
    return [EventLine(at=e.server_time.strftime("%H:%M:%S"), text=describe_event(e.kind, e.data).sentence,
                      color=SEVERITY_COLORS.get(e.severity, "gray")) for e in events]


def _matching(query: _Query) -> tuple[list[tuple[int, str, str]], list[list[str]]]:
    """Database, in a worker thread: the attempts matching the filters, and the exam choices."""
    with session_scope() as db:
        rows = live.attempts_in_progress(db, query.user, live.LiveFilter(query.exam_id, query.search))
        exams = [[str(exam_id), title] for exam_id, title in live.exams_in_progress(db, query.user)]
    return rows, exams


def _details(page_ids: list[int], focus_id: int):
    """Database, in a worker thread: the tiles' details and the focused attempt's event feed."""
    ids = page_ids + ([focus_id] if focus_id and focus_id not in page_ids else [])
    with session_scope() as db:
        described = live.describe(db, ids)
        events = live.latest_events(db, page_ids, EVENTS_PER_TILE)
        focus_events = live.latest_events(db, [focus_id], FOCUS_EVENTS).get(focus_id, []) if focus_id else []
    return described, events, focus_events


def _check_alerts(user: CurrentUser, previous: dict[int, str], event_cursor: int) -> proctor_alerts.AlertCheck:
    """Database, in a worker thread: raise the alerts due and list the open ones. The relay's
    snapshot only reads its table of statuses, so it is safe to take from this thread."""
    with session_scope() as db:
        return proctor_alerts.check(db, user, previous, event_cursor, relay.snapshot)


def _alert_lines(alerts: list[proctor_alerts.AlertView]) -> list[AlertLine]:
    return [AlertLine(a.id, a.attempt_id, a.text, a.raised_at) for a in alerts]


def _toast(alert: proctor_alerts.AlertView):
    return rx.toast.warning(proctoring_texts.ALERT_TOAST_TITLE, description=alert.text, duration=ALERT_TOAST_MS,
                            close_button=True, class_name="alert-toast")


def _tile(item: live.LiveAttempt, events: list[ProctoringEvent], now: datetime) -> Tile:
    snapshot = relay.snapshot(item.attempt_id)
    held = clock.time() - snapshot.changed_at if snapshot.changed_at else None
    return Tile(
        attempt_id=item.attempt_id, candidate=item.candidate, exam=item.exam,
        elapsed=format_clock((now - item.started_at).total_seconds()),
        left=format_clock((item.deadline_at - now).total_seconds()),
        status=snapshot.status, status_label=STATUS_LABELS[snapshot.status],
        status_color=STATUS_COLORS[snapshot.status],
        status_for=format_clock(held) if held is not None and snapshot.status != LiveStatus.live else "",
        tile_src=view_url(item.attempt_id, "camera_low") if "camera_low" in item.streams else "",
        camera_src=view_url(item.attempt_id, "camera") if "camera" in item.streams else "",
        # Only while the candidate shares the screen (the exam asks for it, the browser may not).
        screen_src=view_url(item.attempt_id, "screen")
        if "screen" in item.streams and "screen" in snapshot.streams else "",
        recordings=[HealthLine(h.stream, h.state, h.detail, HEALTH_COLORS.get(h.state, "gray"))
                    for h in item.recordings],
        events=_event_lines(events),
    )


class ProctorGridState(AuthState):
    tiles: list[Tile] = []
    total: int = 0
    page: int = 0
    pages: int = 1
    live_count: int = 0
    reconnecting_count: int = 0
    offline_count: int = 0
    exam_options: list[list[str]] = []
    exam_filter: str = ANY
    status_filter: str = ANY
    search: str = ""
    focus: Tile = Tile()
    focus_events: list[EventLine] = []
    # RTCPeerConnection's configuration for every tile, TURN credentials minted for this user.
    rtc_config: dict = {}
    # The proctor's open alerts, newest first.
    alerts: list[AlertLine] = []
    # "on": new alerts beep too; off by default, remembered by this browser.
    alert_sound: str = rx.LocalStorage("", name="proctor_alert_sound", sync=True)
    # Which background watcher is current: a newer page load retires the older one.
    _watcher: int = 0
    # What the alerts were last checked against: each watched attempt's status, the newest event.
    _statuses: dict[int, str] = {}
    _event_cursor: int = 0

    @rx.var
    def alert_count(self) -> int:
        return len(self.alerts)

    def _query(self) -> _Query:
        return _Query(self._user, int(self.exam_filter) if self.exam_filter.isdigit() else None,
                      self.search, self.status_filter, self.page, self.focus.attempt_id)

    def _page_ids(self, query: _Query, rows: list[tuple[int, str, str]]) -> tuple[list[int], int]:
        """Apply the status filter (the relay's, in memory) and the page; sets the counts.
        Returns the page's attempts and the focused one, if the user may still see it."""
        statuses = {attempt_id: relay.snapshot(attempt_id).status for attempt_id, _, _ in rows}
        counts = {status: 0 for status in LiveStatus}
        for status in statuses.values():
            counts[status] += 1
        self.live_count = counts[LiveStatus.live]
        self.reconnecting_count = counts[LiveStatus.reconnecting]
        self.offline_count = counts[LiveStatus.offline]
        shown = [a for a, _, _ in rows if query.status == ANY or statuses[a] == query.status]
        self.total = len(shown)
        self.pages = max(1, -(-self.total // PAGE_SIZE))
        self.page = min(query.page, self.pages - 1)
        focus_id = query.focus_id if query.focus_id in statuses else 0
        return shown[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE], focus_id

    def _apply(self, page_ids: list[int], focus_id: int, described: dict, events: dict,
               focus_events: list) -> None:
        now = utcnow()
        self.tiles = [_tile(described[a], events.get(a, []), now) for a in page_ids if a in described]
        if focus_id and focus_id in described:
            self.focus = _tile(described[focus_id], [], now)
            self.focus_events = _event_lines(focus_events)
        else:  # none, or the attempt ended or is not one this user may see
            self.focus, self.focus_events = Tile(), []

    def _take_alerts(self, found: proctor_alerts.AlertCheck) -> list:
        """Keep what the check saw; the toasts (and beep) of the alerts raised now."""
        self._statuses, self._event_cursor = found.statuses, found.event_cursor
        self.alerts = _alert_lines(found.open)
        toasts = [_toast(alert) for alert in found.raised]
        return toasts + [rx.call_script(BEEP)] if toasts and self.alert_sound == SOUND_ON else toasts

    def _reload(self) -> None:
        query = self._query()
        rows, self.exam_options = _matching(query)
        page_ids, focus_id = self._page_ids(query, rows)
        self._apply(page_ids, focus_id, *_details(page_ids, focus_id))

    @requires(LIVE_VIEW)
    def on_load(self):
        self.exam_filter = self.status_filter = ANY
        self.search = ""
        self.page = 0
        self.focus, self.focus_events = Tile(), []
        self.rtc_config = ice_servers.rtc_configuration(f"user:{self._user.id}")
        self._reload()
        # The watcher raises and lists the alerts at once, off the event loop; events older than
        # the page are on the tiles already.
        with session_scope() as db:
            self._statuses, self._event_cursor = {}, proctor_alerts.newest_event_id(db)
        return ProctorGridState.watch_live

    @rx.event(background=True)
    async def watch_live(self):
        """Push status and details to this page until it is left or reloaded."""
        async with self:
            if not self._still_allowed():
                return
            self._watcher += 1
            watcher = self._watcher
        version, refreshed_at, checked = relay.version, clock.monotonic(), False
        while True:
            # The first check runs at once, so the page lists its open alerts as it opens.
            latest = await relay.wait_for_change(version, ALERT_CHECK_S) if checked else version
            checked = True
            async with self:
                if watcher != self._watcher or not self._still_allowed():
                    return
                query, user, previous, cursor = self._query(), self._user, dict(self._statuses), self._event_cursor
            found = await asyncio.to_thread(_check_alerts, user, previous, cursor)
            async with self:
                if watcher != self._watcher:
                    return
                toasts = self._take_alerts(found)
            for toast in toasts:
                yield toast
            if latest == version and clock.monotonic() - refreshed_at < REFRESH_S:
                continue
            version, refreshed_at = latest, clock.monotonic()
            # Database work runs in a thread, outside the state lock and off the event loop
            # that also relays the video.
            rows, exams = await asyncio.to_thread(_matching, query)
            async with self:
                if watcher != self._watcher or query != self._query():
                    continue  # a filter changed meanwhile; its handler already reloaded
                self.exam_options = exams
                page_ids, focus_id = self._page_ids(query, rows)
            details = await asyncio.to_thread(_details, page_ids, focus_id)
            async with self:
                if watcher == self._watcher and query == self._query():
                    self._apply(page_ids, focus_id, *details)

    def _still_allowed(self) -> bool:
        # The guard of every other handler, for this long-running one: re-checked on each wake-up,
        # so a revoked session or a changed role stops the stream of updates.
        user = self._signed_in_user()
        if user is None or user.role not in LIVE_VIEW:
            return False
        self._user = user
        return True

    @requires(LIVE_VIEW)
    def set_filter(self, name: str, value: str):
        if name == "exam_filter" and (value == ANY or value.isdigit()):
            self.exam_filter = value
        elif name == "status_filter" and value in {ANY, *LiveStatus}:
            self.status_filter = value
        else:
            return
        self.page = 0
        self._reload()

    @requires(LIVE_VIEW)
    def search_candidates(self, form: dict):
        self.search = str(form.get("search", "")).strip()[:200]
        self.page = 0
        self._reload()

    @requires(LIVE_VIEW)
    def go_to_page(self, page: int):
        self.page = max(0, min(int(page), self.pages - 1))
        self._reload()

    @requires(LIVE_VIEW)
    def open_focus(self, attempt_id: int):
        self.focus = Tile(attempt_id=int(attempt_id))
        self._reload()

    @requires(LIVE_VIEW)
    def close_focus(self):
        self.focus, self.focus_events = Tile(), []

    @requires(LIVE_VIEW)
    def acknowledge_alert(self, alert_id: int):
        with session_scope() as db:
            done = isinstance(alert_id, int) and proctor_alerts.acknowledge(db, self._user, alert_id)
            self.alerts = _alert_lines(proctor_alerts.open_alerts(db, self._user.id))
        if not done:
            return rx.toast.error(proctoring_texts.ALERT_NOT_OPEN)

    @requires(LIVE_VIEW)
    def set_alert_sound(self, on: bool):
        self.alert_sound = SOUND_ON if on is True else ""
