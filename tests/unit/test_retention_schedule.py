"""When the daily retention run is due next (no database)."""

from datetime import datetime, timezone

from proctor_app.media.retention.run import next_daily_run
from tests.support.retention_media import NOW


def test_next_daily_run():
    assert next_daily_run("03:30", NOW) == datetime(2026, 11, 22, 3, 30, tzinfo=timezone.utc)
    assert next_daily_run("12:01", NOW) == datetime(2026, 11, 21, 12, 1, tzinfo=timezone.utc)
    assert next_daily_run("12:00", NOW) == datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
