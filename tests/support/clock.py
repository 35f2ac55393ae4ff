"""A clock tests move instead of sleeping (the app's components take a Clock)."""

from datetime import datetime, timedelta, timezone

from proctor_app.clock import Clock


class FakeClock(Clock):
    """Starts at a fixed instant; only `advance` moves it."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)):
        self._now = start
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        return self._now.timestamp()

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
