"""Encoded frames passed from a publisher's receiver to viewers' senders without decoding.

aiortc's own relay (MediaRelay) decodes each received track once and re-encodes it for every
viewer. Here a publisher's receiver hands its complete encoded frames (out of the jitter buffer)
to a channel instead of to a decoder, and every viewer's sender packs them unchanged
(`Encoder.pack`). That only works when:
- both legs use one codec: each publisher's is kept (VP8 or H.264 video, Opus audio) and its
  viewers are answered with it;
- every frame reaches every viewer: a dropped encoded frame breaks decoding until the next
  keyframe, so a viewer that falls behind waits for a keyframe instead of skipping frames;
- viewers' keyframe requests (PLI) go on to the publisher, and one is sent whenever a viewer
  joins: browsers send keyframes only on request.
The hooks are private aiortc attributes: aiortc is pinned in requirements.txt and the live relay
tests fail if an upgrade breaks the passthrough.
"""

import asyncio
import queue
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_TIME_BASE = Fraction(1, 48000)
# What can pass through, in the order taken when an offer has several: aiortc packs these.
PASSTHROUGH_CODECS = {"video": ("video/VP8", "video/H264"), "audio": ("audio/opus",)}
# Between a viewer's last frame from one publisher connection and its first from the next: 1/30 s
# of video (a little more of audio, at 48 kHz).
SOURCE_GAP_TICKS = 3000
# A viewer this many frames behind is resynchronised at the next keyframe.
MAX_QUEUED_FRAMES = 90


def only(mime_type: str) -> list:
    """aiortc's capabilities for one codec (and retransmission for video), for
    setCodecPreferences."""
    kind = mime_type.split("/")[0]
    return [c for c in RTCRtpReceiver.getCapabilities(kind).codecs
            if c.mimeType.lower() in (mime_type.lower(), "video/rtx")]


def offered_codec(media) -> str | None:
    """The first codec of an offer's media section (aiortc.sdp.MediaDescription) that can pass
    through; H.264 only in packetization mode 1, the one aiortc packs."""
    for codec in media.rtp.codecs:
        for mime_type in PASSTHROUGH_CODECS.get(media.kind, ()):
            if codec.mimeType.lower() == mime_type.lower() and (
                    mime_type != "video/H264" or str(codec.parameters.get("packetization-mode")) == "1"):
                return mime_type
    return None


def vp8_is_keyframe(data: bytes) -> bool:
    # RFC 6386 section 9.1: bit 0 of the frame tag is 0 for a key frame.
    return bool(data) and not data[0] & 0x01


def h264_is_keyframe(data: bytes) -> bool:
    # aiortc hands H.264 frames in Annex B: an IDR slice (NAL unit type 5) makes a keyframe.
    return any(nal and nal[0] & 0x1F == 5 for nal in data.split(b"\x00\x00\x01")[1:])


def is_keyframe(mime_type: str, data: bytes) -> bool:
    if mime_type == "video/VP8":
        return vp8_is_keyframe(data)
    if mime_type == "video/H264":
        return h264_is_keyframe(data)
    return True  # audio: every frame decodes on its own


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    timestamp: int  # 90 kHz, from 0 for each publisher connection
    keyframe: bool
    source: int  # which publisher connection of the channel sent it


class _FrameTap(queue.Queue):
    """Takes the place of an RTCRtpReceiver's decoder queue.

    The receiver puts (codec, encoded frame) here from the event loop; those go to `on_frame`
    instead of a decoder. Its decoder thread waits here, idle and without a decoder, until the
    receiver stops and puts None, which ends the thread and the remote track as usual.
    """

    def __init__(self, on_frame: Callable[[object], None]):
        super().__init__()
        self._on_frame = on_frame

    def put(self, item, block=True, timeout=None):
        if item is None:
            super().put(None)
        else:
            self._on_frame(item[1])


_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"


def _check_receiver(receiver: RTCRtpReceiver, *attributes: str) -> None:
    if getattr(receiver, _DECODER_THREAD, "missing") is not None \
            or any(not hasattr(receiver, name) for name in attributes):
        raise RuntimeError("aiortc's RTCRtpReceiver internals changed: "
                           "the live relay's passthrough needs updating")


def tap_receiver(receiver: RTCRtpReceiver, on_frame: Callable[[object], None]) -> None:
    """Send a not yet started receiver's encoded frames to `on_frame`, never to a decoder."""
    _check_receiver(receiver, _DECODER_QUEUE)
    setattr(receiver, _DECODER_QUEUE, _FrameTap(on_frame))


def without_bandwidth_estimate(receiver: RTCRtpReceiver) -> None:
    """Stop the receiver's REMB feedback (aiortc estimates the bandwidth per receiver). With it,
    Chrome held the camera and its low-resolution layer on one connection at about 60 kbit/s
    each (measured); without it, Chrome adapts to the loss in receiver reports, up to the
    bitrates the page sets."""
    _check_receiver(receiver, _BITRATE_ESTIMATOR)
    setattr(receiver, _BITRATE_ESTIMATOR, None)



class FrameSource(Protocol):
    """What a viewer track is subscribed to (a channel)."""

    viewers: set

    def request_keyframe(self) -> None: ...


class ViewerTrack(MediaStreamTrack):
    """What one viewer's sender reads: the channel's encoded frames, as av.Packets, in `codec`."""

    kind = "video"
    time_base = VIDEO_TIME_BASE

    def __init__(self, codec: str = "video/VP8"):
        super().__init__()
        self.codec = codec
        self.channel: FrameSource | None = None
        self._queue: asyncio.Queue[EncodedFrame] = asyncio.Queue()
        self.active = False  # set once the viewer's connection is up
        self._synced = False
        self._source: int | None = None
        self._offset = 0
        self._last_ts: int | None = None

    def resync(self) -> None:
        """Drop what is queued and wait for a keyframe: decoding can only restart there."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._synced = False

    def push(self, frame: EncodedFrame) -> None:
        if not self.active:
            return
        if not self._synced:
            if not frame.keyframe:
                return
            self._synced = True
        elif self._queue.qsize() >= MAX_QUEUED_FRAMES:
            self.resync()
            self.channel.request_keyframe()
            return
        self._queue.put_nowait(frame)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame.source != self._source:
            # A new publisher connection starts its clock at 0: continue this viewer's timeline.
            self._offset = 0 if self._last_ts is None \
                else self._last_ts + SOURCE_GAP_TICKS - frame.timestamp
            self._source = frame.source
        self._last_ts = frame.timestamp + self._offset
        packet = av.Packet(frame.data)
        packet.pts = self._last_ts
        packet.time_base = self.time_base
        return packet

    def stop(self) -> None:
        super().stop()
        if self.channel is not None:
            self.channel.viewers.discard(self)


class AudioViewerTrack(ViewerTrack):
    kind = "audio"
    time_base = AUDIO_TIME_BASE

    def __init__(self, codec: str = "audio/opus"):
        super().__init__(codec)

