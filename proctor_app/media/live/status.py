"""Live / Reconnecting / Offline per attempt, decided from what the relay sees (pure)."""

import asyncio
from dataclasses import dataclass
from enum import StrEnum

# Live means: a publisher whose connection has not failed, and a frame seen this recently.
FRAME_STALL_S = 2.0


class LiveStatus(StrEnum):
    live = "live"
    reconnecting = "reconnecting"
    offline = "offline"


@dataclass
class AttemptLive:
    changed_at: float  # epoch seconds
    status: LiveStatus = LiveStatus.offline
    ever_live: bool = False
    last_live_at: float = 0.0  # monotonic
    left: bool = False  # the publisher ended its session on purpose
    streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class LiveSnapshot:
    status: LiveStatus
    changed_at: float  # epoch seconds
    streams: tuple[str, ...]


OFFLINE = LiveSnapshot(LiveStatus.offline, 0.0, ())


def next_status(state: AttemptLive, connected: bool, newest_frame_age_s: float | None, now: float,
                offline_after_s: float) -> LiveStatus:
    """The attempt's status now (monotonic `now`): live while its publisher's connection holds and
    frames flow; after that reconnecting, until it left on purpose, was never live, or has been
    gone for offline_after_s."""
    if connected and newest_frame_age_s is not None and newest_frame_age_s < FRAME_STALL_S:
        return LiveStatus.live
    if state.left or not state.ever_live or now - state.last_live_at >= offline_after_s:
        return LiveStatus.offline
    return LiveStatus.reconnecting


class Changes:
    """A version that goes up at each change of live statuses, and a wait for the next one."""

    def __init__(self):
        self.version = 0
        self._changed = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, version: int, timeout: float) -> int:
        """Wait until the version differs from `version` (or timeout); returns the current one."""
        if self.version == version:
            changed = self._changed
            try:  # asyncio.timeout keeps a cancel that arrives with the change (see jobs/worker.py)
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass
        return self.version
