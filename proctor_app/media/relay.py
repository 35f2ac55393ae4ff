"""Live video: candidates publish over WebRTC, proctors view; the server passes encoded frames on.

aiortc's own relay (MediaRelay) decodes each received track once and re-encodes it for every
viewer. Here a publisher's receiver hands its complete encoded frames (out of the jitter buffer)
to a channel instead of to a decoder, and every viewer's sender packs them unchanged
(`Encoder.pack`). That only works when:
- both legs use one codec: VP8 is pinned in every answer;
- every frame reaches every viewer: a dropped encoded frame breaks decoding until the next
  keyframe, so a viewer that falls behind waits for a keyframe instead of skipping frames;
- viewers' keyframe requests (PLI) go on to the publisher, and one is sent whenever a viewer
  joins: browsers send keyframes only on request.
The hooks are private aiortc attributes: aiortc is pinned in requirements.txt and
tests/test_live_relay.py fails if an upgrade breaks the passthrough.

One relay per process: with several app workers, each has its own publishers and viewers.
"""

import asyncio
import logging
import queue
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from proctor_app.db import session_scope
from proctor_app.models import utcnow
from proctor_app.services.attempts import record_event
from proctor_app.services.settings import get_settings

log = logging.getLogger("proctor_app.live")

LIVE_STREAMS = ("camera", "camera_low", "screen")
VIDEO_TIME_BASE = Fraction(1, 90000)
# Between a viewer's last frame from one publisher connection and its first from the next: 1/30 s.
SOURCE_GAP_TICKS = 3000
# Keyframe requests to one publisher, at most this often; later ones are deferred, not lost.
PLI_INTERVAL_S = 0.25
# A viewer this many frames behind is resynchronised at the next keyframe.
MAX_QUEUED_FRAMES = 90
# Live means: a publisher whose connection has not failed, and a frame seen this recently.
FRAME_STALL_S = 2.0
# A peer connection that has not connected by then is given up.
CONNECT_TIMEOUT_S = 20.0
MONITOR_INTERVAL_S = 0.5
MAX_VIEWERS_PER_CHANNEL = 50
# An attempt offline this long, with nobody watching, is forgotten (its next start is new).
FORGET_AFTER_S = 3600
# A leaving page closes its connection and sends its DELETE at once, in either order: a DELETE
# this late after the connection closed still counts.
LATE_DELETE_S = 30.0


class LiveStatus(StrEnum):
    live = "live"
    reconnecting = "reconnecting"
    offline = "offline"


class LiveRequestError(ValueError):
    """An offer the relay cannot serve; the message is meant for the client."""


def _vp8_only() -> list:
    return [c for c in RTCRtpReceiver.getCapabilities("video").codecs
            if c.mimeType in ("video/VP8", "video/rtx")]


def vp8_is_keyframe(data: bytes) -> bool:
    # RFC 6386 section 9.1: bit 0 of the frame tag is 0 for a key frame.
    return bool(data) and not data[0] & 0x01


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


def _without_bandwidth_estimate(receiver: RTCRtpReceiver) -> None:
    """Stop the receiver's REMB feedback (aiortc estimates the bandwidth per receiver). With it,
    Chrome held the camera and its low-resolution layer on one connection at about 60 kbit/s
    each (measured); without it, Chrome adapts to the loss in receiver reports, up to the
    bitrates the page sets."""
    _check_receiver(receiver, _BITRATE_ESTIMATOR)
    setattr(receiver, _BITRATE_ESTIMATOR, None)


class _ViewerTrack(MediaStreamTrack):
    """What one viewer's sender reads: the channel's encoded frames, as av.Packets."""

    kind = "video"

    def __init__(self):
        super().__init__()
        self.channel: _Channel | None = None
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
        packet.time_base = VIDEO_TIME_BASE
        return packet

    def stop(self) -> None:
        super().stop()
        if self.channel is not None:
            self.channel.viewers.discard(self)


class _Channel:
    """One stream of one attempt. Viewers stay subscribed while publishers come and go."""

    def __init__(self, relay: "LiveRelay", attempt_id: int):
        self.relay = relay
        self.attempt_id = attempt_id
        self.viewers: set[_ViewerTrack] = set()
        self.receiver: RTCRtpReceiver | None = None
        self.source = 0
        self.last_frame_at: float | None = None
        self._last_pli = 0.0
        self._deferred_pli: asyncio.TimerHandle | None = None

    def attach(self, receiver: RTCRtpReceiver) -> None:
        # last_frame_at stays: a publisher replaced by its own new connection is still live
        # while the new one connects.
        self.receiver = receiver
        self.source += 1
        for viewer in self.viewers:
            viewer.resync()

    def detach(self, receiver: RTCRtpReceiver) -> None:
        if self.receiver is receiver:
            self.receiver = None

    def on_frame(self, receiver: RTCRtpReceiver, jitter_frame) -> None:
        if receiver is not self.receiver:
            return  # a replaced publisher's last frames
        self.last_frame_at = time.monotonic()
        frame = EncodedFrame(jitter_frame.data, jitter_frame.timestamp,
                             vp8_is_keyframe(jitter_frame.data), self.source)
        for viewer in self.viewers:
            viewer.push(frame)
        self.relay._frame_seen(self.attempt_id)

    def activate(self, viewer: _ViewerTrack) -> None:
        viewer.active = True
        self.request_keyframe()

    def request_keyframe(self) -> None:
        wait = self._last_pli + PLI_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._send_pli()
        elif self._deferred_pli is None:
            self._deferred_pli = asyncio.get_running_loop().call_later(wait, self._send_pli)

    def _send_pli(self) -> None:
        self._deferred_pli = None
        receiver = self.receiver
        if receiver is None:
            return
        self._last_pli = time.monotonic()
        for source in receiver.getSynchronizationSources():
            self.relay._spawn(receiver._send_rtcp_pli(source.source))


@dataclass
class _Session:
    id: str
    role: str  # "publish" or "view"
    attempt_id: int
    owner: str  # who may end it: the upload token's hash, or "user:<id>"
    pc: RTCPeerConnection
    streams: tuple[str, ...]
    receivers: list[tuple[str, RTCRtpReceiver]] = field(default_factory=list)
    viewer: _ViewerTrack | None = None
    created_at: float = field(default_factory=time.monotonic)


@dataclass
class _AttemptLive:
    status: LiveStatus = LiveStatus.offline
    changed_at: float = field(default_factory=time.time)
    ever_live: bool = False
    last_live_at: float = 0.0  # monotonic
    left: bool = False  # the publisher ended its session on purpose
    streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class LiveSnapshot:
    status: LiveStatus
    changed_at: float  # epoch seconds
    streams: tuple[str, ...]


OFFLINE = LiveSnapshot(LiveStatus.offline, 0.0, ())

# attempt id, event kind, severity, data, server time of the change
TransitionHook = Callable[[int, str, str, dict, datetime], Awaitable[None]]


class LiveRelay:
    def __init__(self, offline_after_s: Callable[[], float], on_transition: TransitionHook,
                 enabled: Callable[[], bool] = lambda: True):
        self._offline_after_s = offline_after_s
        self._enabled = enabled
        self._on_transition = on_transition
        self._channels: dict[tuple[int, str], _Channel] = {}
        self._sessions: dict[str, _Session] = {}
        self._publishers: dict[int, _Session] = {}
        # A publisher's next connection, while its current one still sends (make before break).
        self._pending: dict[int, _Session] = {}
        # Publisher sessions closed lately: id -> (session, when), for a DELETE arriving late.
        self._closed: dict[str, tuple[_Session, float]] = {}
        self._attempts: dict[int, _AttemptLive] = {}
        self._tasks: set[asyncio.Future] = set()
        self._monitor: asyncio.Task | None = None
        self._transitions: asyncio.Queue | None = None
        self._changed = asyncio.Event()
        self.version = 0

    # -- signalling -------------------------------------------------------------------------

    async def publish(self, attempt_id: int, owner: str, offer_sdp: str,
                      streams: list[str]) -> tuple[str, str]:
        """Accept a publisher's offer (video m-lines in the order of `streams`); returns
        (session id, answer SDP). A new publisher for the attempt replaces the old one."""
        self._start()
        if not streams or len(set(streams)) != len(streams) \
                or any(s not in LIVE_STREAMS for s in streams):
            raise LiveRequestError(f"streams must be distinct names from {', '.join(LIVE_STREAMS)}")
        kinds = _media_kinds(offer_sdp)
        if kinds != ["video"] * len(streams):
            raise LiveRequestError(f"the offer must have {len(streams)} video sections and nothing else")
        pc = self._new_pc()
        session = _Session(secrets.token_urlsafe(18), "publish", attempt_id, owner, pc, tuple(streams))
        for stream in streams:
            transceiver = pc.addTransceiver("video", direction="recvonly")
            transceiver.setCodecPreferences(_vp8_only())
            receiver = transceiver.receiver
            tap_receiver(receiver, lambda jitter_frame, key=(attempt_id, stream), receiver=receiver:
                          self._publisher_frame(key, receiver, jitter_frame))
            _without_bandwidth_estimate(receiver)
            session.receivers.append((stream, receiver))
        self._watch(session)
        answer = await self._answer(pc, offer_sdp)
        self._sessions[session.id] = session
        self._attempts.setdefault(attempt_id, _AttemptLive()).left = False
        current = self._publishers.get(attempt_id)
        if current is not None and current.pc.connectionState == "connected":
            # The current connection goes on sending until the new one is up.
            superseded = self._pending.get(attempt_id)
            self._pending[attempt_id] = session
            if superseded is not None:
                self._spawn(self._close(superseded))
        else:
            self._promote(session)
        return session.id, answer

    def _promote(self, session: _Session) -> None:
        """Make `session` the attempt's publisher; the one it replaces is closed."""
        attempt_id = session.attempt_id
        if self._pending.get(attempt_id) is session:
            del self._pending[attempt_id]
        old = self._publishers.get(attempt_id)
        self._publishers[attempt_id] = session
        for stream, receiver in session.receivers:
            self._channel(attempt_id, stream).attach(receiver)
        self._attempts[attempt_id].streams = session.streams
        if old is not None:
            self._spawn(self._close(old))

    async def view(self, attempt_id: int, stream: str, owner: str, offer_sdp: str) -> tuple[str, str]:
        """Accept a viewer's offer (one receive-only video m-line); returns (session id, answer)."""
        self._start()
        if stream not in LIVE_STREAMS:
            raise LiveRequestError(f"stream must be one of {', '.join(LIVE_STREAMS)}")
        if _media_kinds(offer_sdp) != ["video"]:
            raise LiveRequestError("the offer must have exactly one video section")
        if self.viewer_count(attempt_id, stream) >= MAX_VIEWERS_PER_CHANNEL:
            raise LiveRequestError("too many viewers on this stream")
        pc = self._new_pc()
        viewer = _ViewerTrack()
        transceiver = pc.addTransceiver(viewer, direction="sendonly")
        transceiver.setCodecPreferences(_vp8_only())
        session = _Session(secrets.token_urlsafe(18), "view", attempt_id, owner, pc, (stream,),
                           viewer=viewer)
        self._watch(session)
        answer = await self._answer(pc, offer_sdp)
        viewer.channel = self._channel(attempt_id, stream)
        viewer.channel.viewers.add(viewer)
        # The viewer's keyframe requests go to the publisher: the sender has no encoder to ask.
        transceiver.sender._send_keyframe = viewer.channel.request_keyframe
        self._sessions[session.id] = session
        return session.id, answer

    def session_owner(self, session_id: str) -> str | None:
        session = self._sessions.get(session_id) or self._closed.get(session_id, (None, 0))[0]
        return session.owner if session else None

    async def end(self, session_id: str) -> bool:
        """End a session on its client's request (WHIP/WHEP DELETE): for a publisher, the
        candidate left, so the attempt goes offline at once rather than after a wait."""
        session = self._sessions.get(session_id)
        if session is None:
            session = self._closed.pop(session_id, (None, 0))[0]
            if session is None:
                return False
        attempt_id = session.attempt_id
        replaced = self._publishers.get(attempt_id) not in (None, session) or attempt_id in self._pending
        if session.role == "publish" and not replaced:
            self._attempts[attempt_id].left = True
        await self._close(session)
        self._closed.pop(session_id, None)  # ended: a second DELETE finds nothing
        self._evaluate(attempt_id)
        return True

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
        for session in list(self._sessions.values()):
            await self._close(session)
        for task in list(self._tasks):
            task.cancel()

    # -- status -----------------------------------------------------------------------------

    def snapshot(self, attempt_id: int) -> LiveSnapshot:
        state = self._attempts.get(attempt_id)
        if state is None:
            return OFFLINE
        return LiveSnapshot(state.status, state.changed_at, state.streams)

    def viewer_count(self, attempt_id: int, stream: str) -> int:
        channel = self._channels.get((attempt_id, stream))
        return len(channel.viewers) if channel else 0

    async def wait_for_change(self, version: int, timeout: float) -> int:
        """Wait until the status of any attempt differs from `version` (or timeout); returns the
        current version. Proctor pages await this instead of polling."""
        if self.version == version:
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                pass
        return self.version

    def _publisher_frame(self, key: tuple[int, str], receiver: RTCRtpReceiver, jitter_frame) -> None:
        channel = self._channels.get(key)
        if channel is not None:
            channel.on_frame(receiver, jitter_frame)

    def _frame_seen(self, attempt_id: int) -> None:
        state = self._attempts.get(attempt_id)
        if state is not None and state.status != LiveStatus.live:
            self._evaluate(attempt_id)

    def _evaluate(self, attempt_id: int) -> None:
        state = self._attempts.get(attempt_id)
        if state is None:
            return
        now = time.monotonic()
        publisher = self._publishers.get(attempt_id)
        if publisher is not None and publisher.pc.connectionState not in ("failed", "closed") and any(
                (ch := self._channels.get((attempt_id, s))) and ch.last_frame_at
                and now - ch.last_frame_at < FRAME_STALL_S for s in publisher.streams):
            status = LiveStatus.live
        elif state.left or not state.ever_live \
                or now - state.last_live_at >= self._offline_after_s():
            status = LiveStatus.offline
        else:
            status = LiveStatus.reconnecting
        if status == state.status:
            if status == LiveStatus.live:
                state.last_live_at = now
            return
        previous, state.status, state.changed_at = state.status, status, time.time()
        if status == LiveStatus.live:
            if state.ever_live:
                self._transition(attempt_id, "live_restored", "info", {
                    "after_s": round(now - state.last_live_at, 1), "streams": list(state.streams)})
            else:
                self._transition(attempt_id, "live_connected", "info", {"streams": list(state.streams)})
            state.ever_live = True
            state.last_live_at = now
        elif previous == LiveStatus.live:
            self._transition(attempt_id, "live_lost", "info" if state.left else "warning",
                             {"reason": "publisher_left" if state.left else "no_frames"})
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def _transition(self, attempt_id: int, kind: str, severity: str, data: dict) -> None:
        self._transitions.put_nowait((attempt_id, kind, severity, data, utcnow()))

    async def _write_transitions(self) -> None:
        # One writer, so events are stored in the order they happened.
        while True:
            attempt_id, kind, severity, data, at = await self._transitions.get()
            try:
                await self._on_transition(attempt_id, kind, severity, data, at)
            except Exception:
                log.exception("recording %s for attempt %s failed", kind, attempt_id)

    async def _run_monitor(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            try:
                await self._check()
            except Exception:  # keep watching; one bad pass must not freeze every status
                log.exception("live relay check failed")

    async def _check(self) -> None:
        now = time.monotonic()
        for session_id, (_, closed_at) in list(self._closed.items()):
            if now - closed_at > LATE_DELETE_S:
                del self._closed[session_id]
        switched_off = self._sessions and not self._enabled()
        for session in list(self._sessions.values()):
            if switched_off or (session.pc.connectionState != "connected"
                                and now - session.created_at > CONNECT_TIMEOUT_S):
                await self._close(session)
        watched = {attempt_id for attempt_id, _ in self._channels}
        for attempt_id, state in list(self._attempts.items()):
            self._evaluate(attempt_id)
            if state.status == LiveStatus.offline and attempt_id not in watched \
                    and time.time() - state.changed_at > FORGET_AFTER_S:
                del self._attempts[attempt_id]

    # -- plumbing ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._monitor is None:
            self._transitions = asyncio.Queue()
            self._monitor = asyncio.create_task(self._run_monitor())
            self._spawn(self._write_transitions())

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new_pc(self) -> RTCPeerConnection:
        # Host candidates only: browsers reach the server directly, so no STUN (which aiortc
        # would otherwise ask on the internet) and no TURN.
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def _answer(self, pc: RTCPeerConnection, offer_sdp: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await pc.close()
            raise LiveRequestError(f"cannot answer this offer ({exc}); VP8 video is required") from exc
        return pc.localDescription.sdp

    def _channel(self, attempt_id: int, stream: str) -> _Channel:
        key = (attempt_id, stream)
        if key not in self._channels:
            self._channels[key] = _Channel(self, attempt_id)
        return self._channels[key]

    def _watch(self, session: _Session) -> None:
        @session.pc.on("connectionstatechange")
        async def on_state():
            state = session.pc.connectionState
            if state == "connected" and session.viewer is not None and session.viewer.channel:
                session.viewer.channel.activate(session.viewer)
            elif state == "connected" and self._pending.get(session.attempt_id) is session:
                self._promote(session)
            elif state in ("failed", "closed"):
                await self._close(session)
            self._evaluate(session.attempt_id)

    async def _close(self, session: _Session) -> None:
        if self._sessions.pop(session.id, None) is None:
            return
        if session.role == "publish":
            self._closed[session.id] = (session, time.monotonic())
        if self._pending.get(session.attempt_id) is session:
            del self._pending[session.attempt_id]
        if self._publishers.get(session.attempt_id) is session:
            del self._publishers[session.attempt_id]
            if session.attempt_id in self._pending:
                self._promote(self._pending[session.attempt_id])
        for stream, receiver in session.receivers:
            self._channel(session.attempt_id, stream).detach(receiver)
        if session.viewer is not None:
            session.viewer.stop()
        for stream in session.streams:
            channel = self._channels.get((session.attempt_id, stream))
            if channel and not channel.viewers and channel.receiver is None:
                del self._channels[(session.attempt_id, stream)]
        await session.pc.close()


def _media_kinds(sdp: str) -> list[str]:
    try:
        kinds = [media.kind for media in SessionDescription.parse(sdp).media]
    except Exception as exc:
        raise LiveRequestError("the body is not an SDP offer") from exc
    if not sdp.startswith("v=0") or not kinds:
        raise LiveRequestError("the body is not an SDP offer")
    return kinds


SETTINGS_TTL_S = 5.0
_settings_cache: tuple[float, dict] = (float("-inf"), {})


def live_settings() -> dict:
    """The admin settings, re-read every few seconds rather than on every status check."""
    global _settings_cache
    read_at, values = _settings_cache
    if time.monotonic() - read_at > SETTINGS_TTL_S:
        with session_scope() as db:
            values = get_settings(db)
        _settings_cache = (time.monotonic(), values)
    return values


async def _store_transition(attempt_id: int, kind: str, severity: str, data: dict,
                            at: datetime) -> None:
    def write() -> None:
        with session_scope() as db:
            record_event(db, attempt_id, kind, severity, data).server_time = at

    await asyncio.to_thread(write)


relay = LiveRelay(offline_after_s=lambda: live_settings()["live_offline_after_s"],
                  on_transition=_store_transition,
                  enabled=lambda: live_settings()["live_video_enabled"])
