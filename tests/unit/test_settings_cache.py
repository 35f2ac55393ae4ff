"""The one settings cache: read again once ttl_s old, at once after a local change; time moved,
never slept through."""

from contextlib import contextmanager

from proctor_app.services.settings import SPECS, SettingsCache
from tests.support.clock import FakeClock


class CountingSessions:
    """A session factory whose settings rows are a dict, counting the reads."""

    def __init__(self):
        self.rows, self.reads = {}, 0

    @contextmanager
    def __call__(self):
        self.reads += 1
        yield self

    def exec(self, _query):
        return [type("Row", (), {"key": k, "value": v}) for k, v in self.rows.items()]


def test_read_once_per_ttl_and_again_after_it():
    sessions, clock = CountingSessions(), FakeClock()
    cache = SettingsCache(sessions, clock, ttl_s=5.0)
    assert cache.fresh() is None
    assert cache()["max_chunk_mb"] == SPECS["max_chunk_mb"].default
    sessions.rows["max_chunk_mb"] = 7
    clock.advance(4.9)
    assert cache()["max_chunk_mb"] == SPECS["max_chunk_mb"].default and sessions.reads == 1
    assert cache.fresh() is not None
    clock.advance(0.2)
    assert cache.fresh() is None
    assert cache()["max_chunk_mb"] == 7 and sessions.reads == 2


def test_invalidate_reads_again_at_once():
    sessions, clock = CountingSessions(), FakeClock()
    cache = SettingsCache(sessions, clock, ttl_s=5.0)
    cache()
    sessions.rows["live_video_enabled"] = False
    cache.invalidate()
    assert cache()["live_video_enabled"] is False and sessions.reads == 2
