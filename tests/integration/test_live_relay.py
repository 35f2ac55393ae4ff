"""The live relay at the aiortc level: Python publisher -> relay -> Python viewers.

The relay's passthrough rests on private aiortc hooks; these tests fail if an aiortc upgrade
breaks them (frames decoded or re-encoded on the server, keyframe requests lost).
"""

import time

import pytest
from aiortc import rtcrtpreceiver
from aiortc.mediastreams import AudioStreamTrack
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket

from proctor_app.media.live.relay import LiveRelay, LiveRequestError
from proctor_app.media.live.status import LiveStatus
from tests.support.live_clients import (
    NumberedCamera,
    Publisher,
    StockRelay,
    Viewer,
    eventually,
    prefer_codecs,
    run_async,
)

ATTEMPT = 7


@pytest.fixture
def codec_use(monkeypatch):
    """Counts decoders made and encoders that encoded, anywhere in this process."""
    use = {"decoders": 0, "encoders": set()}
    make_decoder = rtcrtpreceiver.get_decoder
    encode = Vp8Encoder.encode

    def counting_get_decoder(codec):
        use["decoders"] += 1
        return make_decoder(codec)

    def counting_encode(self, frame, force_keyframe=False):
        use["encoders"].add(id(self))
        return encode(self, frame, force_keyframe)

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", counting_get_decoder)
    monkeypatch.setattr(Vp8Encoder, "encode", counting_encode)
    return use


class Events:
    def __init__(self):
        self.kinds: list[tuple[int, str, dict]] = []

    async def __call__(self, attempt_id, kind, severity, data, at):
        self.kinds.append((attempt_id, kind, data))


def with_relay(scenario) -> None:
    """Run `scenario(relay)` with a relay of its own (offline after 1.5 s), on its own loop."""
    async def run():
        events = Events()
        relay = LiveRelay(offline_after_s=lambda: 1.5, on_transition=events)
        relay.events = events
        try:
            await scenario(relay)
        finally:
            await relay.close()

    run_async(run())


async def publish(relay, camera=None, attempt_id=ATTEMPT) -> tuple[Publisher, str]:
    publisher = Publisher({"camera": camera or NumberedCamera()})
    session = {}

    async def signal(offer):
        session["id"], answer = await relay.publish(attempt_id, "token", offer, ["camera"])
        return answer

    await publisher.start(signal)
    return publisher, session["id"]


async def view(relay, attempt_id=ATTEMPT) -> Viewer:
    viewer = Viewer()

    async def signal(offer):
        return (await relay.view(attempt_id, "camera", "user:1", offer))[1]

    await viewer.start(signal)
    return viewer


def test_frames_pass_through_without_decoding_or_reencoding(codec_use):
    async def scenario(relay):
        camera = NumberedCamera(width=320, height=240)
        publisher, _ = await publish(relay, camera)
        feedback = []
        sender = publisher.senders["camera"]
        handle_rtcp = sender._handle_rtcp_packet
        sender._handle_rtcp_packet = lambda packet: (feedback.append(packet), handle_rtcp(packet))[1]
        viewers = [await view(relay), await view(relay)]
        for viewer in viewers:
            assert await viewer.wait_frames(20, timeout=8)
            assert {(w, h) for _, w, h, _ in viewer.frames} == {(320, 240)}
            numbers = [n for *_, n in viewer.frames]
            # The frames are the publisher's own, in order, none skipped.
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        # Only the clients code: the publisher's one encoder and one decoder per viewer.
        assert codec_use["decoders"] == len(viewers)
        assert len(codec_use["encoders"]) == 1
        # Receiver reports reach the publisher, bandwidth estimates (REMB) do not. (aiortc's
        # first REMB came after about 3 s, with 3 or 4 receiver reports.)
        assert await eventually(lambda: sum(isinstance(p, RtcpRrPacket) for p in feedback) >= 5, timeout=10)
        assert not any(isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP for p in feedback)
        await publisher.close()
        for viewer in viewers:
            await viewer.close()

    with_relay(scenario)


def test_the_count_sees_a_decoding_relay(codec_use):
    """The same scenario through aiortc's stock relay: the server decodes once and encodes per
    viewer, and the counters above see it."""
    async def scenario():
        stock = StockRelay()
        try:
            publisher, _ = await publish(stock)
            viewers = [await view(stock), await view(stock)]
            for viewer in viewers:
                assert await viewer.wait_frames(5, timeout=8)
            assert codec_use["decoders"] == len(viewers) + 1
            assert len(codec_use["encoders"]) == len(viewers) + 1
            await publisher.close()
        finally:
            await stock.close()

    run_async(scenario())


def test_late_viewer_gets_a_picture_at_once_and_keyframe_requests_reach_the_publisher():
    async def scenario(relay):
        # aiortc's encoder, like Chrome's, sends a keyframe only at the start and on request.
        publisher, _ = await publish(relay)
        first = await view(relay)
        assert await first.wait_frames(30, timeout=8)
        late = await view(relay)
        assert await late.wait_frames(1, timeout=5)
        assert late.frames[0][0] - late.started_at < 1.0

        requests = []
        sender = publisher.senders["camera"]
        original = sender._send_keyframe
        sender._send_keyframe = lambda: (requests.append(time.monotonic()), original())
        await first.request_keyframe()
        assert await eventually(lambda: requests, timeout=2)
        await publisher.close()
        await first.close()
        await late.close()

    with_relay(scenario)


def test_status_follows_the_publisher_and_viewers_survive_a_new_connection():
    async def scenario(relay):
        publisher, _ = await publish(relay)
        viewer = await view(relay)
        assert await eventually(lambda: relay.snapshot(ATTEMPT).status == LiveStatus.live, timeout=5)
        assert await viewer.wait_frames(10, timeout=5)

        version = relay.version
        await publisher.close()  # the candidate's connection drops
        assert await relay.wait_for_change(version, timeout=5) != version
        assert relay.snapshot(ATTEMPT).status == LiveStatus.reconnecting
        assert await eventually(lambda: relay.snapshot(ATTEMPT).status == LiveStatus.offline, timeout=4)

        # The candidate's page reconnects with a new peer connection; the viewer does nothing.
        seen = viewer.count
        publisher, session_id = await publish(relay)
        assert await eventually(lambda: relay.snapshot(ATTEMPT).status == LiveStatus.live, timeout=5)
        assert await viewer.wait_frames(seen + 10, timeout=5)

        assert await relay.end(session_id)  # the candidate leaves
        assert relay.snapshot(ATTEMPT).status == LiveStatus.offline
        assert not await relay.end(session_id)
        assert await relay.session_owner(session_id) is None
        await eventually(lambda: len(relay.events.kinds) >= 4, timeout=2)
        assert [(k, d.get("reason")) for _, k, d in relay.events.kinds] == [
            ("live_connected", None), ("live_lost", "no_frames"), ("live_restored", None),
            ("live_lost", "publisher_left")]
        await publisher.close()
        await viewer.close()

    with_relay(scenario)


def test_a_delete_after_the_connection_closed_still_means_the_candidate_left():
    async def scenario(relay):
        publisher, session_id = await publish(relay)
        assert await eventually(lambda: relay.snapshot(ATTEMPT).status == LiveStatus.live, timeout=5)
        await publisher.close()  # the leaving page's connection closes first...
        assert await eventually(lambda: relay.snapshot(ATTEMPT).status == LiveStatus.reconnecting, 5)
        assert await relay.session_owner(session_id) == "token"
        assert await relay.end(session_id)  # ...then its DELETE arrives
        assert relay.snapshot(ATTEMPT).status == LiveStatus.offline

    with_relay(scenario)


def test_a_second_publisher_replaces_the_first():
    async def scenario(relay):
        first, _ = await publish(relay)
        viewer = await view(relay)
        assert await viewer.wait_frames(5, timeout=5)
        version = relay.version
        # The candidate's page connects again (a new screen share) before closing the old one.
        second, _ = await publish(relay, NumberedCamera())
        assert await eventually(lambda: first.pc.connectionState == "closed", timeout=5)
        seen = viewer.count
        assert await viewer.wait_frames(seen + 10, timeout=5)
        # Live throughout: no status change, no live_lost.
        assert relay.version == version and relay.snapshot(ATTEMPT).status == LiveStatus.live
        assert [kind for _, kind, _ in relay.events.kinds] == ["live_connected"]
        await second.close()
        await viewer.close()

    with_relay(scenario)


def test_switching_live_video_off_ends_the_sessions():
    switched_on = [True]

    async def scenario():
        relay = LiveRelay(offline_after_s=lambda: 1.5, on_transition=Events(),
                          enabled=lambda: switched_on[0])
        try:
            publisher, _ = await publish(relay)
            viewer = await view(relay)
            assert await viewer.wait_frames(5, timeout=5)
            switched_on[0] = False
            assert await eventually(lambda: publisher.pc.connectionState == "closed"
                                  and viewer.pc.connectionState == "closed", timeout=5)
        finally:
            await relay.close()

    run_async(scenario())


@pytest.mark.parametrize("offer, streams, message", [
    ("not sdp", ["camera"], "not an SDP offer"),
    (None, ["camera", "screen"], "2 video sections"),
    (None, ["microphone"], "streams must be"),
    (None, ["camera", "camera"], "streams must be"),
])
def test_offers_the_relay_cannot_serve_are_refused(offer, streams, message):
    async def scenario(relay):
        publisher = Publisher({"camera": NumberedCamera()})

        async def signal(sdp):
            return (await relay.publish(ATTEMPT, "token", offer or sdp, streams))[1]

        with pytest.raises(LiveRequestError, match=message):
            await publisher.start(signal)
        await publisher.close()

    with_relay(scenario)


def test_an_h264_and_opus_publisher_keeps_its_codecs_and_viewers_get_both():
    async def scenario(relay):
        # Audio first, as OBS offers it: sections are matched by kind.
        publisher = Publisher({"mic": AudioStreamTrack(), "camera": NumberedCamera()}, codec="video/H264")

        async def signal(sdp):
            return (await relay.publish(ATTEMPT, "token", sdp, ["camera"]))[1]

        await publisher.start(signal)
        # Like a browser, the viewer offers VP8 and H.264: it is answered in the publisher's codec.
        viewer = Viewer(codecs=("video/VP8", "video/H264"), audio=True)
        await viewer.start(lambda sdp: _view_answer(relay, sdp))
        assert await viewer.wait_frames(15, 15), viewer.count
        assert viewer.codec == "video/H264"
        assert await eventually(lambda: viewer.audio_frames >= 25, 10), viewer.audio_frames
        numbers = [number for *_, number in viewer.frames]
        assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 14  # decoded pictures

        # A viewer that cannot take H.264 is refused (422), not answered in a codec that fails.
        vp8_viewer = Viewer()
        with pytest.raises(LiveRequestError, match="H264") as refused:
            await vp8_viewer.start(lambda sdp: _view_answer(relay, sdp))
        assert refused.value.status == 422
        for peer in (vp8_viewer, viewer, publisher):
            await peer.close()

    with_relay(scenario)


async def _view_answer(relay, sdp):
    return (await relay.view(ATTEMPT, "camera", "user:1", sdp))[1]


def test_an_offer_without_a_codec_to_pass_on_is_refused_with_422():
    async def scenario(relay):
        publisher = Publisher({"camera": NumberedCamera()})
        prefer_codecs(publisher.pc.addTransceiver(publisher.tracks["camera"], direction="sendonly"))
        await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
        vp9_only = publisher.pc.localDescription.sdp.replace("VP8/90000", "VP9/90000")
        with pytest.raises(LiveRequestError, match="no codec") as refused:
            await relay.publish(ATTEMPT, "token", vp9_only, ["camera"])
        assert refused.value.status == 422
        with pytest.raises(LiveRequestError) as malformed:
            await relay.publish(ATTEMPT, "token", "v=0\r\nnot an offer", ["camera"])
        assert malformed.value.status == 400
        await publisher.close()
        assert relay.snapshot(ATTEMPT).status == LiveStatus.offline

    with_relay(scenario)
