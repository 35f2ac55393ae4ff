"""Live video: candidates publish over WebRTC, proctors view; the server passes encoded frames on
(passthrough.py), one channel per attempt and stream (channel.py), and decides each attempt's
live status (status.py). Signalling is WHIP/WHEP shaped (api/live.py).

A relay serves the app's workers from a process of its own (processes.py), or lives in the app
process where there are no relay processes.
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription

from proctor_app.clock import Clock, system_clock
from proctor_app.media.live.channel import Channel
from proctor_app.media.live.ice import IceServers
from proctor_app.media.live.offers import LiveRequestError, codec_of, offer_media
from proctor_app.media.live.passthrough import (
    PASSTHROUGH_CODECS,
    AudioViewerTrack,
    ViewerTrack,
    only,
    tap_receiver,
    without_bandwidth_estimate,
)
from proctor_app.media.live.status import (
    OFFLINE,
    AttemptLive,
    Changes,
    LiveSnapshot,
    LiveStatus,
    next_status,
)

log = logging.getLogger("proctor_app.live")

LIVE_STREAMS = ("camera", "camera_low", "screen")
# The channel of a publisher's audio section (the microphone), whatever its video streams.
AUDIO = "audio"
# A peer connection that has not connected by then is given up.
CONNECT_TIMEOUT_S = 20.0
MONITOR_INTERVAL_S = 0.5
MAX_VIEWERS_PER_CHANNEL = 50
# An attempt offline this long, with nobody watching, is forgotten (its next start is new).
FORGET_AFTER_S = 3600
# A leaving page closes its connection and sends its DELETE at once, in either order: a DELETE
# this late after the connection closed still counts.
LATE_DELETE_S = 30.0


@dataclass
class Session:
    id: str
    role: str  # "publish" or "view"
    attempt_id: int
    owner: str  # who may end it: the upload token's hash, or "user:<id>"
    pc: RTCPeerConnection
    streams: tuple[str, ...]
    created_at: float  # monotonic
    receivers: list[tuple[str, RTCRtpReceiver, str]] = field(default_factory=list)  # + codec
    viewers: list[ViewerTrack] = field(default_factory=list)



# attempt id, event kind, severity, data, server time of the change
TransitionHook = Callable[[int, str, str, dict, datetime], Awaitable[None]]
# session id, attempt id, stream, owner, server time of the end: a viewer's session ended
ViewEndHook = Callable[[str, int, str, str, datetime], Awaitable[None]]


class LiveRelay:
    """Publishers, viewers and channels of one process; `offline_after_s` and `enabled` are asked
    as they are needed (admin settings), `on_transition` stores each live status change."""

    def __init__(self, offline_after_s: Callable[[], float], on_transition: TransitionHook,
                 enabled: Callable[[], bool] = lambda: True, clock: Clock = system_clock,
                 ice: IceServers | None = None, on_view_end: ViewEndHook | None = None):
        self.clock = clock
        self._on_view_end = on_view_end
        self._ice = ice or IceServers(clock=clock)
        self._offline_after_s = offline_after_s
        self._enabled = enabled
        self._on_transition = on_transition
        self._channels: dict[tuple[int, str], Channel] = {}
        self._sessions: dict[str, Session] = {}
        self._publishers: dict[int, Session] = {}
        # A publisher's next connection, while its current one still sends (make before break).
        self._pending: dict[int, Session] = {}
        # Publisher sessions closed lately: id -> (session, when), for a DELETE arriving late.
        self._closed: dict[str, tuple[Session, float]] = {}
        self._attempts: dict[int, AttemptLive] = {}
        self._tasks: set[asyncio.Future] = set()
        self._monitor: asyncio.Task | None = None
        self._transitions: asyncio.Queue | None = None
        self._changes = Changes()

    # -- signalling -------------------------------------------------------------------------

    async def publish(self, attempt_id: int, owner: str, offer_sdp: str,
                      streams: list[str], allow_audio: bool = True) -> tuple[str, str]:
        """Accept a publisher's offer (video m-lines in the order of `streams`, and at most one
        audio m-line); returns (session id, answer SDP). Each section keeps the first codec of
        the offer that can pass through. A new publisher for the attempt replaces the old one."""
        self._start()
        if not streams or len(set(streams)) != len(streams) \
                or any(s not in LIVE_STREAMS for s in streams):
            raise LiveRequestError(f"streams must be distinct names from {', '.join(LIVE_STREAMS)}", 400)
        media = offer_media(offer_sdp)
        kinds = [m.kind for m in media]
        if kinds.count("video") != len(streams) or kinds.count("audio") > 1 \
                or len(kinds) != len(streams) + kinds.count("audio"):
            raise LiveRequestError(f"the offer must have {len(streams)} video sections and at most one "
                                   "audio section")
        if "audio" in kinds and not allow_audio:
            raise LiveRequestError("this exam does not relay the microphone", 403)
        names = iter(streams)
        plan = [(next(names) if m.kind == "video" else AUDIO, m.kind, codec_of(m)) for m in media]
        pc = self._new_pc()
        session = Session(secrets.token_urlsafe(18), "publish", attempt_id, owner, pc, tuple(streams),
                          self.clock.monotonic())
        for stream, kind, codec in plan:
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(only(codec))
            receiver = transceiver.receiver
            tap_receiver(receiver, lambda jitter_frame, key=(attempt_id, stream), receiver=receiver:
                          self._publisher_frame(key, receiver, jitter_frame))
            without_bandwidth_estimate(receiver)
            session.receivers.append((stream, receiver, codec))
        self._watch(session)
        answer = await self._answer(pc, offer_sdp)
        self._sessions[session.id] = session
        self._attempts.setdefault(attempt_id, AttemptLive(self.clock.time())).left = False
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

    def _promote(self, session: Session) -> None:
        """Make `session` the attempt's publisher; the one it replaces is closed."""
        attempt_id = session.attempt_id
        if self._pending.get(attempt_id) is session:
            del self._pending[attempt_id]
        old = self._publishers.get(attempt_id)
        self._publishers[attempt_id] = session
        for stream, receiver, codec in session.receivers:
            stale = self._channel(attempt_id, stream).attach(receiver, codec)
            # Viewers answered in the previous publisher's codec reconnect and get the new one.
            for other in list(self._sessions.values()):
                if stale.intersection(other.viewers):
                    self._spawn(self._close(other))
        self._attempts[attempt_id].streams = session.streams
        if old is not None:
            self._spawn(self._close(old))

    async def view(self, attempt_id: int, stream: str, owner: str, offer_sdp: str) -> tuple[str, str]:
        """Accept a viewer's offer (one receive-only video m-line, and one audio m-line for the
        attempt's sound if wanted); returns (session id, answer). Viewers get the publisher's
        codec (that of the last one, or the first passthrough codec while there is none)."""
        self._start()
        if stream not in LIVE_STREAMS:
            raise LiveRequestError(f"stream must be one of {', '.join(LIVE_STREAMS)}", 400)
        media = offer_media(offer_sdp)
        if sorted(m.kind for m in media) not in (["video"], ["audio", "video"]):
            raise LiveRequestError("the offer must have one video section and at most one audio section")
        if self.viewer_count(attempt_id, stream) >= MAX_VIEWERS_PER_CHANNEL:
            raise LiveRequestError("too many viewers on this stream", 503)
        plan = []
        for m in media:
            name = stream if m.kind == "video" else AUDIO
            existing = self._channels.get((attempt_id, name))
            codec = existing.codec if existing and existing.codec else PASSTHROUGH_CODECS[m.kind][0]
            if not any(c.mimeType.lower() == codec.lower() for c in m.rtp.codecs):
                raise LiveRequestError(f"this attempt's {m.kind} is {codec}, which the offer lacks")
            plan.append((name, (ViewerTrack if m.kind == "video" else AudioViewerTrack)(codec)))
        pc = self._new_pc()
        transceivers = []
        for _, track in plan:
            transceivers.append(pc.addTransceiver(track, direction="sendonly"))
            transceivers[-1].setCodecPreferences(only(track.codec))
        session = Session(secrets.token_urlsafe(18), "view", attempt_id, owner, pc, (stream,),
                          self.clock.monotonic(), viewers=[track for _, track in plan])
        self._watch(session)
        answer = await self._answer(pc, offer_sdp)
        for (name, track), transceiver in zip(plan, transceivers):
            track.channel = self._channel(attempt_id, name)
            track.channel.viewers.add(track)
            # The viewer's keyframe requests go to the publisher: the sender has no encoder to ask.
            transceiver.sender._send_keyframe = track.channel.request_keyframe
        self._sessions[session.id] = session
        return session.id, answer

    async def session_owner(self, session_id: str) -> str | None:
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

    async def close_sessions(self, owners: Iterable[str], attempt_ids: Iterable[int] | None = None) -> int:
        """End every session opened by one of `owners` (on `attempt_ids` only, when given): their
        access was taken away. Returns how many ended. A viewer's page then finds its way back
        refused; a publisher's attempt goes offline at once, as when the candidate leaves."""
        owners = set(owners)
        attempts = None if attempt_ids is None else set(attempt_ids)
        ended = [s.id for s in self._sessions.values()
                 if s.owner in owners and (attempts is None or s.attempt_id in attempts)]
        for session_id in ended:
            await self.end(session_id)
        return len(ended)

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

    def snapshots(self) -> dict[int, LiveSnapshot]:
        """Every attempt the relay knows, offline ones included."""
        return {attempt_id: self.snapshot(attempt_id) for attempt_id in self._attempts}

    def session_counts(self) -> dict[str, int]:
        """Live sessions by role (publish, view)."""
        counts = {"publish": 0, "view": 0}
        for session in self._sessions.values():
            counts[session.role] += 1
        return counts

    def viewer_count(self, attempt_id: int, stream: str) -> int:
        channel = self._channels.get((attempt_id, stream))
        return len(channel.viewers) if channel else 0

    @property
    def version(self) -> int:
        return self._changes.version

    async def wait_for_change(self, version: int, timeout: float) -> int:
        """Wait until the status of any attempt differs from `version` (or timeout); returns the
        current version. Proctor pages await this instead of polling."""
        return await self._changes.wait(version, timeout)

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
        now = self.clock.monotonic()
        publisher = self._publishers.get(attempt_id)
        connected = publisher is not None and publisher.pc.connectionState not in ("failed", "closed")
        frames = [ch.last_frame_at for stream in (publisher.streams if publisher else ())
                  if (ch := self._channels.get((attempt_id, stream))) and ch.last_frame_at]
        status = next_status(state, connected, now - max(frames) if frames else None, now,
                             self._offline_after_s())
        if status == state.status:
            if status == LiveStatus.live:
                state.last_live_at = now
            return
        previous, state.status, state.changed_at = state.status, status, self.clock.time()
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
        self._changes.bump()

    def _transition(self, attempt_id: int, kind: str, severity: str, data: dict) -> None:
        self._transitions.put_nowait((attempt_id, kind, severity, data, self.clock.now()))

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
        now = self.clock.monotonic()
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
                    and self.clock.time() - state.changed_at > FORGET_AFTER_S:
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
        # Only the configured servers: aiortc would otherwise ask a STUN server on the internet.
        return RTCPeerConnection(RTCConfiguration(iceServers=self._ice.for_aiortc()))

    async def _answer(self, pc: RTCPeerConnection, offer_sdp: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await pc.close()
            raise LiveRequestError(f"cannot answer this offer ({exc}); VP8 or H.264 video (packetization "
                                   "mode 1, constrained baseline) and Opus audio can be relayed") from exc
        return self._ice.advertise_public_ip(pc.localDescription.sdp)

    def _channel(self, attempt_id: int, stream: str) -> Channel:
        key = (attempt_id, stream)
        if key not in self._channels:
            self._channels[key] = Channel(attempt_id, self.clock, self._frame_seen, self._spawn)
        return self._channels[key]

    def _watch(self, session: Session) -> None:
        @session.pc.on("connectionstatechange")
        async def on_state():
            state = session.pc.connectionState
            if state == "connected" and session.viewers:
                for viewer in session.viewers:
                    if viewer.channel:
                        viewer.channel.activate(viewer)
            elif state == "connected" and self._pending.get(session.attempt_id) is session:
                self._promote(session)
            elif state in ("failed", "closed"):
                await self._close(session)
            self._evaluate(session.attempt_id)

    async def _close(self, session: Session) -> None:
        if self._sessions.pop(session.id, None) is None:
            return
        if session.role == "publish":
            self._closed[session.id] = (session, self.clock.monotonic())
        if self._pending.get(session.attempt_id) is session:
            del self._pending[session.attempt_id]
        if self._publishers.get(session.attempt_id) is session:
            del self._publishers[session.attempt_id]
            if session.attempt_id in self._pending:
                self._promote(self._pending[session.attempt_id])
        ended_at = self.clock.now()
        for stream, receiver, _ in session.receivers:
            self._channel(session.attempt_id, stream).detach(receiver)
        for viewer in session.viewers:
            viewer.stop()
        for key, channel in list(self._channels.items()):
            if key[0] == session.attempt_id and not channel.viewers and channel.receiver is None:
                del self._channels[key]
        await session.pc.close()
        if session.role == "view" and self._on_view_end is not None:
            try:  # awaited, so a shutdown's close() still records the ends
                await self._on_view_end(session.id, session.attempt_id, session.streams[0], session.owner, ended_at)
            except Exception:
                log.exception("recording the end of live view %s failed", session.id)
