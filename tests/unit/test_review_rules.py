"""The reviewers' rules on rows in memory (no database): recording health, when re-processing is
possible, and the sprite naming shared with processing."""

from datetime import timedelta

import pytest

from proctor_app.media.processing import thumbnails
from proctor_app.models import Attempt, Recording, RecordingStatus, utcnow
from proctor_app.services import review


def _attempt(length_s: float) -> Attempt:
    start = utcnow() - timedelta(hours=1)
    return Attempt(exam_id=1, candidate_id=1, started_at=start, deadline_at=start + timedelta(hours=1),
                   ended_at=start + timedelta(seconds=length_s))


def test_health_counts_each_missing_second_once():
    attempt = _attempt(100)
    rec = Recording(attempt_id=1, stream="camera", started_at=attempt.started_at + timedelta(seconds=10),
                    ended_at=attempt.started_at + timedelta(seconds=90),
                    gaps=[{"start_s": 20, "end_s": 30, "cause": "network"},
                          {"start_s": 25, "end_s": 35, "cause": "chunks missing"},
                          {"start_s": 5, "end_s": 12, "cause": "reload"}])
    health = review.recording_health(attempt, rec)
    # Missing: 0-12 (late start and a reload), 20-35, 90-100.
    assert health.coverage == pytest.approx(1 - 37 / 100)
    assert [(g.start_s, g.end_s) for g in health.gaps] == [(0, 10), (5, 12), (20, 30), (25, 35), (90, 100)]
    assert {g.cause for g in health.gaps} >= {"recording started late", "recording stopped early", "network"}


def test_health_of_a_full_recording_and_of_none():
    attempt = _attempt(60)
    full = Recording(attempt_id=1, stream="camera", started_at=attempt.started_at + timedelta(seconds=0.8),
                     ended_at=attempt.ended_at)
    assert review.recording_health(attempt, full).coverage == 1.0
    assert review.recording_health(attempt, full).gaps == []
    nothing = review.recording_health(attempt, Recording(attempt_id=1, stream="screen"))
    assert nothing.coverage == 0.0
    assert nothing.gaps[0].cause == "no recording received"
    assert review.recording_health(Attempt(exam_id=1, candidate_id=1), full) is None


def test_an_attempt_in_progress_is_uploading_after_its_last_upload_not_missing_it():
    start = utcnow() - timedelta(seconds=60)
    attempt = Attempt(exam_id=1, candidate_id=1, started_at=start, deadline_at=start + timedelta(hours=1))
    rec = Recording(attempt_id=1, stream="camera", started_at=start + timedelta(seconds=1),
                    ended_at=start + timedelta(seconds=50),
                    gaps=[{"start_s": 20, "end_s": 25, "cause": "network"}])
    health = review.recording_health(attempt, rec, now=start + timedelta(seconds=60))
    assert [g.cause for g in health.gaps] == ["network"]
    assert health.uploading_from_s == pytest.approx(50)
    # Coverage of the time up to the live edge: 5 s missing of 50.
    assert health.coverage == pytest.approx(0.9)
    # Once it ended, the same stretch is a gap.
    attempt.ended_at = start + timedelta(seconds=60)
    ended = review.recording_health(attempt, rec)
    assert ended.uploading_from_s is None
    assert ended.gaps[-1] == review.Gap(50, 60, "recording stopped early")


def test_reprocess_needs_an_ended_attempt_with_its_raw_chunks():
    attempt = _attempt(60)
    ok = Recording(attempt_id=1, stream="camera", status=RecordingStatus.failed)
    assert review.can_reprocess(attempt, [ok])
    assert not review.can_reprocess(attempt, [])
    assert not review.can_reprocess(attempt, [ok, Recording(attempt_id=1, stream="screen", raw_deleted_at=utcnow())])
    assert not review.can_reprocess(attempt, [Recording(attempt_id=1, stream="camera", status=RecordingStatus.processing)])
    assert not review.can_reprocess(Attempt(exam_id=1, candidate_id=1), [ok])


def test_sprite_names_from_processing_are_understood():
    for seconds in (5, 12):
        name = thumbnails.sprite_name("screen", thumbnails.sprite_interval(seconds * thumbnails.SPRITE_MAX_TILES))
        assert review.sprite_layout(f"processed/2026/11/7/{name}") == (float(seconds), thumbnails.SPRITE_WIDTH)
    assert review.sprite_layout("processed/2026/11/7/screen_sprite.jpg") is None
    assert review.sprite_layout("sprite_0s_160w.jpg") is None
