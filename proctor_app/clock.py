"""The one clock of the app. Components take a Clock; tests hand in one they move
(tests/support/clock.py) instead of sleeping through a TTL or an interval."""

import time
from datetime import datetime, timezone


class Clock:
    """Real time: wall-clock instants (aware UTC, epoch seconds) and a monotonic counter."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


system_clock = Clock()
