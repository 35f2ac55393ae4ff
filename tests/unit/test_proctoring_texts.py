"""Events as sentences (services/proctoring_texts.py): what reviewers and proctors read instead of the
raw kinds and data."""

import pytest

from proctor_app.media.ingest.events import BROWSER_EVENTS
from proctor_app.services.proctoring_texts import TEXTS, describe_event


def test_the_issues_examples_read_as_sentences():
    started = describe_event("segment_started", {
        "stream": "camera", "segment": 0, "mime_type": "video/x-matroska;codecs=avc1,opus", "audio": True,
        "reason": "start", "navigation": "navigate"})
    assert started.sentence == "Camera recording started"
    assert started.details == ["Video format: H.264 with Opus audio (Matroska)", "Recording part 1",
                               "Before this, the candidate opened the page"]
    assert describe_event("question_viewed", {"question_id": 1}).sentence == "Question 1 viewed"
    exam = describe_event("exam_started", {"clock_offset_ms": -4})
    assert exam.sentence == "Exam started"
    # The offset is the server's time minus the browser's: -4 means the browser is ahead.
    assert exam.details == ["The browser's clock is 4 ms ahead of the server's"]


@pytest.mark.parametrize("kind", sorted(set(BROWSER_EVENTS) | {
    "consent_accepted", "exam_started", "clock_synced", "device_check_passed", "device_check_failed",
    "question_viewed", "answer_saved", "submitted", "auto_submitted", "ended_by_api",
    "live_connected", "live_lost", "live_restored"}))
def test_every_kind_the_app_records_has_a_sentence_even_without_data(kind):
    assert kind in TEXTS
    text = describe_event(kind, {})
    assert text.sentence and "_" not in text.sentence and "None" not in text.sentence
    assert text.details == []


def test_details_say_what_happened_and_leave_out_what_is_missing():
    lost = describe_event("chunks_missing", {"stream": "screen", "segment": 2, "seqs": [4, 5, 6],
                                             "cause": "not on the server and no longer in this browser's queue"})
    assert lost.sentence == "3 pieces of the screen recording lost"
    assert lost.details == ["Cause: not on the server and no longer in this browser's queue"]
    assert describe_event("camera_regained", {"stream": "camera", "after_ms": 12400}).sentence == \
        "Camera back after 12 s"
    assert describe_event("live_lost", {"reason": "publisher_left"}).sentence == \
        "Live video ended: the candidate's page closed its connection"
    assert describe_event("live_restored", {"after_s": 3.2, "streams": ["camera", "camera_low"]}) \
        .details == ["Streams: camera"]
    rejected = describe_event("upload_rejected", {"item": "x", "status": 413, "error": "", "message": "Too big"})
    assert rejected.details == ["Server answer: 413", "Message: Too big"]
    assert describe_event("auto_submitted", {"status": "expired"}).sentence.startswith("Exam closed")


def test_unknown_kinds_and_odd_data_still_read_as_text():
    text = describe_event("second_person", {"confidence": 0.9, "faces": [1, 2], "flagged": True, "empty": None})
    assert text.sentence == "Second person"
    assert text.details == ["Confidence: 0.9", "Faces: 1, 2", "Flagged: yes"]
    assert describe_event("exam_started", {"clock_offset_ms": "soon"}).details == []
    assert describe_event("question_viewed", None).sentence == "A question viewed"
    long = describe_event("recorder_error", {"error": "x" * 1000}).details[0]
    assert len(long) == 300 and long.endswith("...")
