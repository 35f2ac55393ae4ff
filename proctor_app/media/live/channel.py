"""One stream of one attempt: the publisher's receiver feeding the viewers subscribed to it."""

import asyncio
from collections.abc import Callable, Coroutine

from aiortc import RTCRtpReceiver

from proctor_app.clock import Clock
from proctor_app.media.live.passthrough import EncodedFrame, ViewerTrack, is_keyframe
from proctor_app.metrics import relay_bytes

_relayed_in, _relayed_out = relay_bytes.labels("in"), relay_bytes.labels("out")

# Keyframe requests to one publisher, at most this often; later ones are deferred, not lost.
PLI_INTERVAL_S = 0.25


class Channel:
    """One stream of one attempt. Viewers stay subscribed while publishers come and go."""

    def __init__(self, attempt_id: int, clock: Clock, on_frame_seen: Callable[[int], None],
                 spawn: Callable[[Coroutine], None]):
        self.attempt_id = attempt_id
        self.clock, self._on_frame_seen, self._spawn = clock, on_frame_seen, spawn
        self.viewers: set[ViewerTrack] = set()
        self.receiver: RTCRtpReceiver | None = None
        # The publisher's codec; it stays when the publisher goes, for viewers that come meanwhile.
        self.codec: str | None = None
        self.source = 0
        self.last_frame_at: float | None = None
        self._last_pli = 0.0
        self._deferred_pli: asyncio.TimerHandle | None = None

    def attach(self, receiver: RTCRtpReceiver, codec: str) -> set[ViewerTrack]:
        """Returns the viewers that were answered in another codec: they cannot follow."""
        # last_frame_at stays: a publisher replaced by its own new connection is still live
        # while the new one connects.
        self.receiver = receiver
        self.codec = codec
        self.source += 1
        for viewer in self.viewers:
            viewer.resync()
        return {viewer for viewer in self.viewers if viewer.codec != codec}

    def detach(self, receiver: RTCRtpReceiver) -> None:
        if self.receiver is receiver:
            self.receiver = None

    def on_frame(self, receiver: RTCRtpReceiver, jitter_frame) -> None:
        if receiver is not self.receiver:
            return  # a replaced publisher's last frames
        self.last_frame_at = self.clock.monotonic()
        frame = EncodedFrame(jitter_frame.data, jitter_frame.timestamp,
                             is_keyframe(self.codec, jitter_frame.data), self.source)
        for viewer in self.viewers:
            viewer.push(frame)
        _relayed_in.inc(len(frame.data))
        _relayed_out.inc(len(frame.data) * len(self.viewers))
        self._on_frame_seen(self.attempt_id)

    def activate(self, viewer: ViewerTrack) -> None:
        viewer.active = True
        self.request_keyframe()

    def request_keyframe(self) -> None:
        wait = self._last_pli + PLI_INTERVAL_S - self.clock.monotonic()
        if wait <= 0:
            self._send_pli()
        elif self._deferred_pli is None:
            self._deferred_pli = asyncio.get_running_loop().call_later(wait, self._send_pli)

    def _send_pli(self) -> None:
        self._deferred_pli = None
        receiver = self.receiver
        if receiver is None or not self.codec.startswith("video/"):
            return
        self._last_pli = self.clock.monotonic()
        for source in receiver.getSynchronizationSources():
            self._spawn(receiver._send_rtcp_pli(source.source))

