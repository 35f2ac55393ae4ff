"""Operator alerts: a pure function of the health samples and the time, so the Health page shows
them and a webhook (`operator.alert`, later) can send the same ones."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from proctor_app.models import HealthSample

FAILURE_RATE_MAX = 0.05  # of the finalize jobs that ended in the last hour
JOB_WAIT_MAX_S = 600.0
DISK_FREE_MIN = 0.10
# Samples come every minute; without one this long, sampling itself has stopped.
SAMPLE_STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Alert:
    key: str  # stable: failure_rate, job_waiting, disk_low, no_samples
    message: str
    since: datetime  # the first sample of the current run of samples crossing the threshold


def _crossings(sample: HealthSample) -> dict[str, str]:
    """What one sample crosses: alert key -> message."""
    crossed = {}
    ended = sample.jobs_done + sample.jobs_failed
    if ended and sample.jobs_failed / ended > FAILURE_RATE_MAX:
        crossed["failure_rate"] = (f"{sample.jobs_failed} of {ended} recordings failed processing in the "
                                   f"last hour ({sample.jobs_failed / ended:.0%}, limit "
                                   f"{FAILURE_RATE_MAX:.0%})")
    if sample.oldest_wait_s > JOB_WAIT_MAX_S:
        crossed["job_waiting"] = (f"a processing job has waited {sample.oldest_wait_s / 60:.0f} min "
                                  f"(limit {JOB_WAIT_MAX_S / 60:.0f} min; {sample.queue_depth} waiting)")
    if sample.disk_total_bytes and sample.disk_free_bytes / sample.disk_total_bytes < DISK_FREE_MIN:
        crossed["disk_low"] = (f"the storage disk has {sample.disk_free_bytes / sample.disk_total_bytes:.0%}"
                               f" free (limit {DISK_FREE_MIN:.0%})")
    return crossed


def evaluate_alerts(samples: Sequence[HealthSample], now: datetime) -> list[Alert]:
    """The alerts standing at `now`, judged by the newest sample; `samples` oldest first."""
    if not samples or now - samples[-1].taken_at > SAMPLE_STALE_AFTER:
        last = f"the last at {samples[-1].taken_at:%Y-%m-%d %H:%M} UTC" if samples else "none yet"
        return [Alert("no_samples", f"no health sample in the last {SAMPLE_STALE_AFTER.seconds // 60} "
                      f"min ({last}): is the app's scheduler running?", samples[-1].taken_at if samples
                      else now)]
    alerts = []
    for key, message in _crossings(samples[-1]).items():
        since = samples[-1].taken_at
        for earlier in reversed(samples[:-1]):
            if key not in _crossings(earlier):
                break
            since = earlier.taken_at
        alerts.append(Alert(key, message, since))
    return alerts
