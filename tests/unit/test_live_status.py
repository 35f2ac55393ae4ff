"""Live / Reconnecting / Offline from what the relay sees (pure)."""

from proctor_app.media.live.status import FRAME_STALL_S, AttemptLive, LiveStatus, next_status

NOW = 5000.0
OFFLINE_AFTER_S = 20.0


def state(**fields) -> AttemptLive:
    return AttemptLive(changed_at=0.0, **fields)


def test_live_while_connected_and_frames_flow():
    assert next_status(state(), True, 0.1, NOW, OFFLINE_AFTER_S) == LiveStatus.live
    assert next_status(state(), True, FRAME_STALL_S - 0.01, NOW, OFFLINE_AFTER_S) == LiveStatus.live


def test_frames_without_a_connection_or_stalled_frames_are_not_live():
    was_live = state(status=LiveStatus.live, ever_live=True, last_live_at=NOW - 1)
    assert next_status(was_live, False, 0.1, NOW, OFFLINE_AFTER_S) == LiveStatus.reconnecting
    assert next_status(was_live, True, FRAME_STALL_S, NOW, OFFLINE_AFTER_S) == LiveStatus.reconnecting
    assert next_status(was_live, True, None, NOW, OFFLINE_AFTER_S) == LiveStatus.reconnecting


def test_never_live_is_offline_not_reconnecting():
    assert next_status(state(), True, None, NOW, OFFLINE_AFTER_S) == LiveStatus.offline
    assert next_status(state(), False, None, NOW, OFFLINE_AFTER_S) == LiveStatus.offline


def test_reconnecting_turns_offline_after_the_setting():
    was_live = state(status=LiveStatus.live, ever_live=True, last_live_at=NOW - OFFLINE_AFTER_S + 0.5)
    assert next_status(was_live, False, None, NOW, OFFLINE_AFTER_S) == LiveStatus.reconnecting
    assert next_status(was_live, False, None, NOW + 0.5, OFFLINE_AFTER_S) == LiveStatus.offline


def test_a_publisher_that_left_on_purpose_is_offline_at_once():
    left = state(status=LiveStatus.live, ever_live=True, last_live_at=NOW - 1, left=True)
    assert next_status(left, False, None, NOW, OFFLINE_AFTER_S) == LiveStatus.offline
