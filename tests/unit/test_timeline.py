"""Gap planning and copy eligibility: pure functions over what probing found."""

from pathlib import Path

from proctor_app.media.processing.timeline import (
    CAUSE_DAMAGED,
    CAUSE_MISSING,
    CAUSE_NO_HEADER,
    CAUSE_NOT_UPLOADED,
    CAUSE_UNDECODABLE,
    FILL_MIN_S,
    MAX_KEYFRAME_GAP_S,
    Gap,
    Probe,
    Source,
    blame_lost,
    copyable,
    may_copy,
    plan_gaps,
)

H264 = "video/x-matroska;codecs=avc1,opus"


def source(offset_s: float, length_s: float, *, number: int = 0, holes=(), missing=False, damaged=False,
           video="h264", audio="opus", keyframe_gap_s=2.0, mime=H264, start_s=0.0) -> Source:
    probe = Probe(video_codec=video, width=640, height=480, fps=15, audio_codec=audio, channels=1,
                  start_s=start_s, end_s=start_s + length_s, holes=list(holes),
                  max_keyframe_gap_s=keyframe_gap_s)
    return Source(number, offset_s, offset_s + start_s + length_s, mime, [Path("/dev/null")], ["x"],
                  missing, damaged, probe)


def spans(gaps: list[Gap]) -> list[tuple[float, float, str]]:
    return [(round(g.start_s, 3), round(g.end_s, 3), g.cause) for g in gaps]


def test_one_segment_covering_the_exam_has_no_gap():
    assert plan_gaps([source(0.0, 600.0)], 600.0) == []


def test_time_nothing_covers_is_a_gap_at_the_start_between_segments_and_at_the_end():
    sources = [source(5.0, 100.0), source(140.0, 50.0, number=1)]
    assert spans(plan_gaps(sources, 300.0)) == [
        (0.0, 5.0, CAUSE_NOT_UPLOADED), (105.0, 140.0, CAUSE_NOT_UPLOADED), (190.0, 300.0, CAUSE_NOT_UPLOADED)]


def test_stretches_up_to_the_fill_threshold_are_not_gaps():
    sources = [source(FILL_MIN_S, 100.0 - FILL_MIN_S)]
    assert plan_gaps(sources, 100.0 + FILL_MIN_S) == []


def test_holes_inside_a_segment_are_gaps_with_the_segment_s_cause():
    assert spans(plan_gaps([source(10.0, 50.0, holes=[(20.0, 25.0)], missing=True)], 60.0)) == [
        (0.0, 10.0, CAUSE_NOT_UPLOADED), (30.0, 35.0, CAUSE_MISSING)]
    assert plan_gaps([source(0.0, 60.0, holes=[(20.0, 25.0)], damaged=True)], 60.0)[0].cause == CAUSE_DAMAGED
    assert plan_gaps([source(0.0, 60.0, holes=[(20.0, 25.0)])], 60.0)[0].cause == CAUSE_UNDECODABLE


def test_overlapping_segments_leave_no_gap_and_gaps_are_clipped_to_the_exam():
    # The second segment's hole lies past the exam's end (its media time 55-80 is exam 105-130).
    sources = [source(0.0, 70.0), source(50.0, 60.0, number=1, holes=[(55.0, 80.0)])]
    assert plan_gaps(sources, 100.0) == []
    assert spans(plan_gaps([source(0.0, 100.0, holes=[(90.0, 120.0)], missing=True)], 100.0)) == [
        (90.0, 100.0, CAUSE_MISSING)]


def test_lost_segments_take_the_blame_for_time_they_would_have_covered():
    gaps = plan_gaps([source(0.0, 30.0)], 100.0)
    blamed = blame_lost(gaps, [Gap(40.0, 70.0, CAUSE_NO_HEADER)])
    assert spans(blamed) == [(30.0, 100.0, CAUSE_NO_HEADER)]
    assert spans(blame_lost(plan_gaps([source(0.0, 30.0)], 100.0), [])) == [(30.0, 100.0, CAUSE_NOT_UPLOADED)]


def test_may_copy_reads_only_the_rows():
    assert may_copy([source(0.0, 600.0)], 600.0)
    assert not may_copy([source(0.0, 600.0, mime="video/webm;codecs=vp8,opus")], 600.0)
    assert not may_copy([source(0.0, 600.0, missing=True)], 600.0)
    assert not may_copy([source(0.0, 300.0), source(300.0, 300.0, number=1)], 600.0)
    assert not may_copy([source(FILL_MIN_S + 0.5, 600.0)], 600.0 + FILL_MIN_S + 0.5)
    assert not may_copy([source(0.0, 590.0)], 600.0)


def test_copyable_needs_one_clean_seekable_h264_segment_spanning_the_exam():
    assert copyable([source(0.0, 600.0)], 600.0)
    assert copyable([source(0.0, 600.0, audio="")], 600.0)
    assert not copyable([source(0.0, 600.0, video="vp8")], 600.0)
    assert not copyable([source(0.0, 600.0, audio="vorbis")], 600.0)
    assert not copyable([source(0.0, 600.0, holes=[(100.0, 103.0)])], 600.0)
    assert not copyable([source(0.0, 600.0, damaged=True)], 600.0)
    assert not copyable([source(0.0, 600.0, keyframe_gap_s=MAX_KEYFRAME_GAP_S + 0.1)], 600.0)
    assert not copyable([source(0.0, 600.0 - FILL_MIN_S - 0.1)], 600.0)
    assert not copyable([source(0.0, 300.0), source(300.0, 300.0, number=1)], 600.0)
