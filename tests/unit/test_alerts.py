"""Operator alerts over health samples: each fires when its threshold is crossed, says since when,
and clears once a newer sample is back under it; a silent sampler is an alert of its own."""

from proctor_app.models import HealthSample
from proctor_app.services.alerts import evaluate_alerts
from tests.support.clock import FakeClock

GB = 10**9


class Samples:
    """Samples taken a minute apart on a fake clock."""

    def __init__(self):
        self.clock, self.taken = FakeClock(), []

    def take(self, **figures) -> None:
        self.clock.advance(60)
        healthy = dict(jobs_done=40, jobs_failed=0, queue_depth=0, oldest_wait_s=0.0,
                       disk_free_bytes=500 * GB, disk_total_bytes=1000 * GB)
        self.taken.append(HealthSample(taken_at=self.clock.now(), **{**healthy, **figures}))

    def alerts(self) -> dict[str, object]:
        return {a.key: a for a in evaluate_alerts(self.taken, self.clock.now())}


def test_healthy_samples_raise_nothing():
    samples = Samples()
    samples.take()
    samples.take(jobs_done=0)  # nothing ended in the hour: no rate to judge
    assert samples.alerts() == {}


def test_failure_rate_over_five_percent_fires_and_clears():
    samples = Samples()
    samples.take(jobs_done=95, jobs_failed=5)  # exactly 5 %: not over it
    assert samples.alerts() == {}
    samples.take(jobs_done=94, jobs_failed=6)
    first = samples.clock.now()
    samples.take(jobs_done=90, jobs_failed=10)
    alert = samples.alerts()["failure_rate"]
    assert alert.since == first and "10 of 100" in alert.message
    samples.take(jobs_done=100, jobs_failed=2)
    assert "failure_rate" not in samples.alerts()


def test_a_job_waiting_over_ten_minutes_fires_and_clears():
    samples = Samples()
    samples.take(queue_depth=3, oldest_wait_s=600)
    assert samples.alerts() == {}
    samples.take(queue_depth=3, oldest_wait_s=660)
    assert "waited 11 min" in samples.alerts()["job_waiting"].message
    samples.take(queue_depth=0, oldest_wait_s=0)
    assert samples.alerts() == {}


def test_disk_under_ten_percent_free_fires_and_clears():
    samples = Samples()
    samples.take(disk_free_bytes=100 * GB)
    assert samples.alerts() == {}
    samples.take(disk_free_bytes=99 * GB)
    assert set(samples.alerts()) == {"disk_low"}
    samples.take(disk_free_bytes=300 * GB)
    assert samples.alerts() == {}


def test_several_alerts_at_once():
    samples = Samples()
    samples.take(jobs_failed=40, oldest_wait_s=3600, disk_free_bytes=GB)
    assert set(samples.alerts()) == {"failure_rate", "job_waiting", "disk_low"}


def test_no_recent_sample_is_an_alert():
    samples = Samples()
    assert set(samples.alerts()) == {"no_samples"}
    samples.take(disk_free_bytes=GB)
    samples.clock.advance(4 * 60)
    assert set(samples.alerts()) == {"disk_low"}
    samples.clock.advance(2 * 60)  # over 5 min without a sample: the old figures are not judged
    assert set(samples.alerts()) == {"no_samples"}
    samples.take()
    assert samples.alerts() == {}
