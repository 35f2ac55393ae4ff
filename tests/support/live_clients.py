"""Python WebRTC peers for the live relay's regression test and benchmark.

A publisher and a viewer that talk to a relay through a `signal(offer_sdp) -> answer_sdp`
coroutine, a synthetic camera whose frames carry their number (to measure latency), pre-encoded
VP8, H.264 and Opus (load without encoding cost), and aiortc's stock relay, which decodes and re-encodes for
every viewer, as the baseline.
"""

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from proctor_app.media.live.passthrough import tap_receiver, vp8_is_keyframe

Signal = Callable[[str], Awaitable[str]]
TIME_BASE = Fraction(1, 90000)
AUDIO_TIME_BASE = Fraction(1, 48000)
AUDIO_FPS = 50  # 20 ms Opus frames
# The frame number is drawn as NUMBER_BITS black or white blocks along the top edge.
NUMBER_BITS = 16
NUMBER_MASK = (1 << NUMBER_BITS) - 1
BLOCK = 16


def run_async(coro: Coroutine):
    """Run a coroutine on a fresh event loop in a thread of its own: the session's Playwright
    (sync API) keeps a loop running in the main thread, where asyncio.run would refuse."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def eventually(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait until `condition()` holds (True) or `timeout` seconds passed (its last value)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


def prefer_codecs(transceiver, *codecs: str) -> None:
    """Offer `codecs` only (VP8 by default), with retransmission."""
    wanted = codecs or ("video/VP8",)
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType in (*wanted, "video/rtx")])


def new_pc(config: RTCConfiguration | None = None) -> RTCPeerConnection:
    return RTCPeerConnection(config or RTCConfiguration(iceServers=[]))


class NumberedCamera(MediaStreamTrack):
    """Frames at `fps` with a moving bar and their number in the picture; remembers when each
    frame was made."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.made_at: dict[int, float] = {}
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        self._count += 1
        await asyncio.sleep(max(0.0, self._start + self._count / self.fps - time.monotonic()))
        frame = self.picture(self._count)
        frame.pts = self._count * 90000 // self.fps
        frame.time_base = TIME_BASE
        self.made_at[self._count & NUMBER_MASK] = time.monotonic()
        return frame

    def picture(self, count: int) -> av.VideoFrame:
        luma = bytearray(b"\x60" * (self.width * self.height))
        bar = (count * 4) % (self.width - 12)
        for y in range(BLOCK * 2, self.height):
            luma[y * self.width + bar:y * self.width + bar + 12] = b"\xd0" * 12
        for bit in range(NUMBER_BITS):
            value = b"\xff" if count >> bit & 1 else b"\x00"
            for y in range(BLOCK):
                start = y * self.width + bit * BLOCK
                luma[start:start + BLOCK] = value * BLOCK
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(bytes(luma))
        chroma = b"\x80" * (self.width * self.height // 4)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        return frame


def read_number(frame: av.VideoFrame) -> int:
    """The number NumberedCamera drew into a (decoded) frame."""
    plane = frame.planes[0]
    luma = bytes(plane)
    row = (BLOCK // 2) * plane.line_size
    return sum(1 << bit for bit in range(NUMBER_BITS)
               if luma[row + bit * BLOCK + BLOCK // 2] > 128)


FFMPEG_VIDEO = {
    "vp8": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-f", "ivf"],
    # What browsers send: constrained baseline, in Annex B (aiortc packs it in packetization mode 1).
    "h264": ["-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency",
             "-bf", "0", "-f", "h264"],
}


def _ffmpeg_packets(arguments: list[str], suffix: str, stream: str) -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip{suffix}"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", *arguments, str(path)],
                       check=True)
        with av.open(str(path)) as container:
            return [bytes(packet) for packet in container.demux(**{stream: 0}) if packet.size]


def encode_clip(width: int, height: int, fps: int, seconds: int, bitrate_k: int,
                codec: str = "vp8") -> list[bytes]:
    """Encoded VP8 (or H.264) frames of a camera-like picture (test pattern with sensor noise, a
    keyframe every second), made once with the bundled ffmpeg."""
    return _ffmpeg_packets(["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
                            "-t", str(seconds), "-vf", "noise=alls=10:allf=t", "-b:v", f"{bitrate_k}k",
                            "-g", str(fps), *FFMPEG_VIDEO[codec]], f".{codec}", "video")


def encode_audio_clip(seconds: int) -> list[bytes]:
    """Encoded Opus frames (20 ms each, 48 kHz) of a tone, as a browser's microphone sends."""
    return _ffmpeg_packets(["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                            "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-ac", "1"],
                           ".ogg", "audio")


class EncodedSource(MediaStreamTrack):
    """Loops pre-encoded frames (`kind` video at `fps`, or 20 ms audio frames) with ever-increasing
    timestamps: load without encoding cost. (A video loop restarts at a keyframe, so the stream
    stays decodable.)"""

    def __init__(self, frames: list[bytes], fps: int = AUDIO_FPS, kind: str = "video"):
        super().__init__()
        self.kind = kind
        self.frames, self.fps = frames, fps
        self.time_base = TIME_BASE if kind == "video" else AUDIO_TIME_BASE
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._count / self.fps - time.monotonic()))
        packet = av.Packet(self.frames[self._count % len(self.frames)])
        packet.pts = self._count * self.time_base.denominator // self.fps
        packet.time_base = self.time_base
        self._count += 1
        return packet


class Publisher:
    """A candidate's browser: sends `tracks` (stream name -> track), one video section each."""

    def __init__(self, tracks: dict[str, MediaStreamTrack], codec: str = "video/VP8",
                 config: RTCConfiguration | None = None):
        self.tracks = tracks
        self.codec = codec
        self.pc = new_pc(config)
        self.senders = {}

    async def start(self, signal: Signal) -> None:
        for stream, track in self.tracks.items():
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                prefer_codecs(transceiver, self.codec)
            self.senders[stream] = transceiver.sender
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await signal(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def close(self) -> None:
        await self.pc.close()


class Viewer:
    """A proctor's browser: one receive-only video section.

    With decode=True frames are decoded (and their numbers read); otherwise encoded frames are
    only counted, which keeps a benchmark's load generator cheap.
    """

    def __init__(self, decode: bool = True, config: RTCConfiguration | None = None,
                 codecs: tuple[str, ...] = ("video/VP8",), audio: bool = False):
        self.decode = decode
        self.codecs = codecs
        self.audio = audio  # also receive the attempt's sound (audio frames counted)
        self.audio_frames = 0
        self.pc = new_pc(config)
        self.started_at = 0.0
        self.frames: list[tuple[float, int, int, int]] = []  # (time, width, height, number)
        self.encoded: list[tuple[float, bool]] = []  # (time, keyframe) when not decoding
        self.receiver = None
        self._reader: asyncio.Task | None = None
        self._audio_reader: asyncio.Task | None = None

    async def start(self, signal: Signal) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        prefer_codecs(transceiver, *self.codecs)
        self.receiver = transceiver.receiver
        audio = self.pc.addTransceiver("audio", direction="recvonly").receiver if self.audio else None
        if not self.decode:
            tap_receiver(self.receiver, lambda f: self.encoded.append(
                (time.monotonic(), vp8_is_keyframe(f.data))))
            if audio:
                tap_receiver(audio, self._count_encoded_audio)
                audio = None
        self.started_at = time.monotonic()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await signal(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        if self.decode:
            self._reader = asyncio.ensure_future(self._read(self.receiver.track))
        if audio:
            self._audio_reader = asyncio.ensure_future(self._count_audio(audio.track))

    def _count_encoded_audio(self, frame) -> None:
        self.audio_frames += 1

    async def _count_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.audio_frames += 1
        except MediaStreamError:
            pass

    @property
    def codec(self) -> str:
        """The video codec the answer chose."""
        return self.pc.getTransceivers()[0]._codecs[0].mimeType

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames.append((time.monotonic(), frame.width, frame.height, read_number(frame)))
        except MediaStreamError:
            pass

    @property
    def count(self) -> int:
        return len(self.frames) if self.decode else len(self.encoded)

    async def wait_frames(self, count: int, timeout: float) -> bool:
        return await eventually(lambda: self.count >= count, timeout)

    async def request_keyframe(self) -> None:
        for source in self.receiver.getSynchronizationSources():
            await self.receiver._send_rtcp_pli(source.source)

    async def close(self) -> None:
        for reader in (self._reader, self._audio_reader):
            if reader:
                reader.cancel()
        await self.pc.close()


class StockRelay:
    """aiortc's own relay (MediaRelay): decodes each published track once and re-encodes it for
    every viewer. Same calls as LiveRelay.publish/view (video in `codec`, and the attempt's audio
    when both offers have it), for comparison only."""

    def __init__(self, codec: str = "video/VP8"):
        self.codec = codec
        self._relay = MediaRelay()
        self._tracks: dict[tuple[int, str], MediaStreamTrack] = {}
        self._pcs: list[RTCPeerConnection] = []

    async def publish(self, attempt_id: int, owner: str, offer_sdp: str,
                      streams: list[str]) -> tuple[str, str]:
        pc = new_pc()
        self._pcs.append(pc)
        receivers = []
        for _ in streams:
            transceiver = pc.addTransceiver("video", direction="recvonly")
            prefer_codecs(transceiver, self.codec)
            receivers.append(transceiver.receiver)
        audio = pc.addTransceiver("audio", direction="recvonly").receiver if "m=audio" in offer_sdp else None
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        for stream, receiver in zip(streams, receivers):
            self._tracks[(attempt_id, stream)] = receiver.track
        if audio:
            self._tracks[(attempt_id, "audio")] = audio.track
        return str(id(pc)), pc.localDescription.sdp

    async def view(self, attempt_id: int, stream: str, owner: str, offer_sdp: str) -> tuple[str, str]:
        pc = new_pc()
        self._pcs.append(pc)
        transceiver = pc.addTransceiver(self._relay.subscribe(self._tracks[(attempt_id, stream)]),
                                        direction="sendonly")
        prefer_codecs(transceiver, self.codec)
        if "m=audio" in offer_sdp and (attempt_id, "audio") in self._tracks:
            pc.addTransceiver(self._relay.subscribe(self._tracks[(attempt_id, "audio")]), direction="sendonly")
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(id(pc)), pc.localDescription.sdp

    async def close(self) -> None:
        for pc in self._pcs:
            await pc.close()
