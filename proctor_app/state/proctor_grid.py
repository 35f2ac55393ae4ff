"""/proctor: a live tile for every attempt in progress the user may watch, and a focused view.

Live / Reconnecting / Offline is decided by the relay on the server. While the page is open, a
background task waits on the relay's change notification (and refreshes the database-backed
details every few seconds) and pushes the result through state: the browser never polls.
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
from proctor_app.services import live
from proctor_app.services.live import LiveStatus
from proctor_app.services.proctoring_texts import describe_event
from proctor_app.services.review import format_clock
from proctor_app.state.auth import AuthState, requires

PAGE_SIZE = 25
REFRESH_S = 5.0
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
    # Which background watcher is current: a newer page load retires the older one.
    _watcher: int = 0

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
        return ProctorGridState.watch_live

    @rx.event(background=True)
    async def watch_live(self):
        """Push status and details to this page until it is left or reloaded."""
        async with self:
            if not self._still_allowed():
                return
            self._watcher += 1
            watcher = self._watcher
        version = relay.version
        while True:
            version = await relay.wait_for_change(version, REFRESH_S)
            async with self:
                if watcher != self._watcher or not self._still_allowed():
                    return
                query = self._query()
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
