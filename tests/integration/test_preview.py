"""The live preview of a recording not processed yet: rebuilt when newer chunks exist and it is
older than the rebuild interval, which the test moves a clock through instead of sleeping."""

from datetime import datetime, timedelta, timezone

import av

from proctor_app.media.processing.preview import MIN_REBUILD_S, ensure_preview
from proctor_app.media.storage import storage
from proctor_app.models import utcnow
from tests.support import samples
from tests.support.clock import FakeClock
from tests.support.finalized import CLIP_S


def _duration_s(relative: str) -> float:
    with av.open(str(storage.absolute(relative))) as container:
        return container.duration / 1e6


async def test_newer_chunks_show_once_the_rebuild_interval_has_passed(clip, demo_db):
    started = utcnow() - timedelta(seconds=CLIP_S + 10)
    sample = samples.start_attempt(started)
    pieces = samples.evenly(samples.cut(clip, CLIP_S), started, CLIP_S)
    samples.upload_segment(sample, "camera", 0, pieces[:3], samples.MIME["h264"])
    clock = FakeClock(datetime.now(timezone.utc))

    first = await ensure_preview(sample.attempt_id, "camera", clock)
    assert first.path.endswith("camera_preview.mp4")
    partial_s = _duration_s(first.path)
    assert partial_s < CLIP_S / 2

    samples.upload_segment(sample, "camera", 0, pieces, samples.MIME["h264"])
    again = await ensure_preview(sample.attempt_id, "camera", clock)
    assert (again.built_at, _duration_s(again.path)) == (first.built_at, partial_s)  # not yet

    clock.advance(MIN_REBUILD_S + 1)
    later = await ensure_preview(sample.attempt_id, "camera", clock)
    assert later.built_at > first.built_at
    assert abs(_duration_s(later.path) - CLIP_S) < 1.5

    clock.advance(MIN_REBUILD_S + 1)  # nothing newer: the same file again
    assert (await ensure_preview(sample.attempt_id, "camera", clock)).built_at == later.built_at
