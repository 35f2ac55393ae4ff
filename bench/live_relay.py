"""Server CPU of the live relay per relayed stream, against aiortc's stock relay in the same run.

The relay runs in a child process (only its CPU is measured); this process is the load: aiortc
publishers sending pre-encoded video and Opus audio (no encoding cost) and viewers that count
encoded frames (no decoding cost). Three relays, for VP8 and for H.264 video:
- "passthrough": the app's relay (LiveRelay) alone in a child process;
- "processes": the app's setup, a relay process (media/live/processes.py) that this process
  reaches through a RelayPool, as every app worker does (its signalling over the Unix socket);
- "stock": aiortc's MediaRelay (decode once, re-encode per viewer), the baseline.
Loads, one after the other:
- one publisher (640x480 camera and its microphone, the focused view) to N viewers of both;
- M publishers (320x240, the grid's tiles) with one video viewer each;
- glass-to-glass latency on loopback: frames drawn with their number, encoded, relayed, decoded
  and read back.

    python bench/live_relay.py [--quick] [--codecs vp8,h264]

Targets (2 cores), for each codec: the relay process at 4 viewers at most 1/5 of the stock relay's
CPU; 20 publishers each with a viewer sustained (>= 95% of frames delivered); median latency through
the relay process at most 300 ms. The last line printed is one JSON object.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The relay module reads the app's config on import: keep the benchmark out of the app's data.
os.environ.setdefault("PROCTOR_DATA_DIR", tempfile.mkdtemp(prefix="bench-live-"))

import psutil  # noqa: E402

from proctor_app.media.live.processes import RelayPool, serve as serve_relay_process  # noqa: E402
from proctor_app.media.live.relay import LiveRelay  # noqa: E402
from tests.support.live_clients import (  # noqa: E402
    AUDIO_FPS,
    EncodedSource,
    NumberedCamera,
    Publisher,
    StockRelay,
    Viewer,
    encode_audio_clip,
    encode_clip,
)

FPS = 15
PUBLISHERS = 20
KINDS = ("passthrough", "processes", "stock")
MIME = {"vp8": "video/VP8", "h264": "video/H264"}
TARGET_CPU_RATIO_AT_4 = 0.2
TARGET_DELIVERED = 0.95
TARGET_LATENCY_MS = 300


# -- the relay processes ----------------------------------------------------------------------

async def _no_events(*_args) -> None:
    return None


def bench_relay() -> LiveRelay:
    return LiveRelay(offline_after_s=lambda: 60.0, on_transition=_no_events)


async def serve(kind: str, codec: str) -> None:
    """Answer publish/view requests (JSON lines on stdin) with the relay of `kind`."""
    relay = bench_relay() if kind == "passthrough" else StockRelay(MIME[codec])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        if request["op"] == "publish":
            _, answer = await relay.publish(request["attempt"], "bench", request["sdp"], ["camera"])
        else:
            _, answer = await relay.view(request["attempt"], "camera", "bench", request["sdp"])
        sys.stdout.write(json.dumps({"sdp": answer}) + "\n")
        sys.stdout.flush()
    await relay.close()


# -- the load ---------------------------------------------------------------------------------

class RelayProcess:
    """A relay of `kind` alone in a child process, asked over its stdin."""

    def __init__(self, kind: str, codec: str):
        self.kind, self.codec = kind, codec
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self):
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", self.kind, "--codecs", self.codec,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=dict(os.environ))
        self.ps = psutil.Process(self.proc.pid)
        return self

    async def __aexit__(self, *exc):
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def ask(self, **request) -> str:
        async with self._lock:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            await self.proc.stdin.drain()
            return json.loads(await self.proc.stdout.readline())["sdp"]

    async def publish(self, attempt: int, sdp: str) -> str:
        return await self.ask(op="publish", attempt=attempt, sdp=sdp)

    async def view(self, attempt: int, sdp: str) -> str:
        return await self.ask(op="view", attempt=attempt, sdp=sdp)

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    async def publisher(self, attempt: int, tracks: dict) -> Publisher:
        publisher = Publisher(tracks, codec=MIME[self.codec])
        await publisher.start(lambda sdp: self.publish(attempt, sdp))
        return publisher

    async def viewer(self, attempt: int, decode: bool = False, audio: bool = False) -> Viewer:
        viewer = Viewer(decode=decode, codecs=(MIME[self.codec],), audio=audio)
        await viewer.start(lambda sdp: self.view(attempt, sdp))
        return viewer


class PooledRelayProcess(RelayProcess):
    """The app's setup: one relay process, reached through a RelayPool as an app worker does."""

    def __init__(self, codec: str):
        super().__init__("processes", codec)
        self.pool = RelayPool(1, Path(tempfile.mkdtemp(prefix="bench-relay-")),
                              [sys.executable, __file__, "--relay-process"])

    async def __aenter__(self):
        await self.pool.start()
        [self.proc] = self.pool._children
        self.ps = psutil.Process(self.proc.pid)
        return self

    async def __aexit__(self, *exc):
        await self.pool.close()

    async def publish(self, attempt: int, sdp: str) -> str:
        return (await self.pool.publish(attempt, "bench", sdp, ["camera"]))[1]

    async def view(self, attempt: int, sdp: str) -> str:
        return (await self.pool.view(attempt, "camera", "bench", sdp))[1]


async def measure(relay: RelayProcess, viewers: list[Viewer], warmup: float, window: float) -> dict:
    # Every viewer receiving (connections are set up concurrently), then a settling time.
    await asyncio.gather(*[v.wait_frames(1, timeout=30) for v in viewers])
    await asyncio.sleep(warmup)
    cpu, counts, start = relay.cpu_s(), [v.count for v in viewers], time.monotonic()
    audio_counts = [v.audio_frames for v in viewers]
    await asyncio.sleep(window)
    elapsed = time.monotonic() - start
    cpu_pct = 100 * (relay.cpu_s() - cpu) / elapsed
    delivered = min((v.count - c) / (FPS * elapsed) for v, c in zip(viewers, counts))
    result = {"cpu_pct": round(cpu_pct, 1), "per_stream_pct": round(cpu_pct / len(viewers), 2),
              "delivered": round(min(delivered, 1.0), 3)}
    if all(v.audio for v in viewers):
        result["audio_delivered"] = round(min(1.0, min(
            (v.audio_frames - a) / (AUDIO_FPS * elapsed) for v, a in zip(viewers, audio_counts))), 3)
    return result


async def close_all(*peers) -> None:
    for peer in peers:
        await peer.close()


async def one_to_many(relay: RelayProcess, clip: list[bytes], audio_clip: list[bytes], counts: list[int],
                      warmup: float, window: float) -> list[dict]:
    """The camera and the microphone to every viewer."""
    results = []
    publisher = await relay.publisher(0, {"camera": EncodedSource(clip, FPS),
                                          "microphone": EncodedSource(audio_clip, kind="audio")})
    viewers = []
    for count in counts:
        viewers += await asyncio.gather(*[relay.viewer(0, audio=True) for _ in range(count - len(viewers))])
        results.append({"viewers": count, **await measure(relay, viewers, warmup, window)})
    await close_all(publisher, *viewers)
    return results


async def many_publishers(relay: RelayProcess, clip: list[bytes], count: int, warmup: float,
                          window: float) -> dict:
    attempts = range(1, count + 1)
    publishers = await asyncio.gather(*[relay.publisher(a, {"camera": EncodedSource(clip, FPS)})
                                        for a in attempts])
    viewers = await asyncio.gather(*[relay.viewer(a) for a in attempts])
    result = {"publishers": count, **await measure(relay, viewers, warmup, window)}
    await close_all(*publishers, *viewers)
    return result


async def latency(relay: RelayProcess, seconds: float) -> dict:
    camera = NumberedCamera(640, 480, FPS)
    attempt = 1000
    publisher = await relay.publisher(attempt, {"camera": camera})
    viewer = await relay.viewer(attempt, decode=True)
    await asyncio.sleep(seconds)
    settled = viewer.started_at + 1.0
    samples = sorted(1000 * (at - camera.made_at[number]) for at, _, _, number in viewer.frames
                     if at > settled and number in camera.made_at)
    await close_all(publisher, viewer)
    return {"median_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1), "frames": len(samples)}


async def measure_relay(kind: str, codec: str, quick: bool, clips: dict) -> dict:
    """All loads through one relay process of `kind`, one after the other."""
    warmup, window = (1.0, 3.0) if quick else (3.0, 8.0)
    relay = PooledRelayProcess(codec) if kind == "processes" else RelayProcess(kind, codec)
    async with relay:
        return {
            "one_to_many": await one_to_many(relay, clips["camera"], clips["audio"],
                                             [4] if quick else [1, 2, 4, 8], warmup, window),
            "many_publishers": await many_publishers(relay, clips["tile"], PUBLISHERS, warmup, window),
            "latency": await latency(relay, 3.5 if quick else 12.0),
        }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


async def run_codec(codec: str, quick: bool) -> dict:
    clips = {"camera": encode_clip(640, 480, FPS, seconds=2, bitrate_k=500, codec=codec),
             "tile": encode_clip(320, 240, FPS, seconds=2, bitrate_k=150, codec=codec),
             "audio": encode_audio_clip(seconds=2)}
    results = {kind: await measure_relay(kind, codec, quick, clips) for kind in KINDS}
    report: dict = {"one_to_many": []}
    for rows in zip(*(results[kind]["one_to_many"] for kind in KINDS)):
        row = {"viewers": rows[0]["viewers"], **dict(zip(KINDS, rows))}
        row["cpu_ratio"] = {kind: ratio(row[kind]["cpu_pct"], row["stock"]["cpu_pct"]) for kind in KINDS[:2]}
        report["one_to_many"].append(row)
        print(f"{codec} 1 publisher (camera + microphone) -> {row['viewers']} viewers: " + ", ".join(
            f"{kind} {row[kind]['cpu_pct']}% of a core ({row[kind]['per_stream_pct']}% per viewer, "
            f"audio {row[kind].get('audio_delivered', 0):.0%})" for kind in KINDS)
              + f"; ratio to stock: {row['cpu_ratio']}", flush=True)

    grid = {kind: results[kind]["many_publishers"] for kind in KINDS}
    report["many_publishers"] = {**grid, "cpu_ratio": {
        kind: ratio(grid[kind]["cpu_pct"], grid["stock"]["cpu_pct"]) for kind in KINDS[:2]}}
    for kind, result in grid.items():
        print(f"{codec} {PUBLISHERS} publishers, one viewer each, {kind}: {result['cpu_pct']}% of a core "
              f"({result['per_stream_pct']}% per stream), {result['delivered']:.1%} of frames delivered",
              flush=True)

    report["latency"] = {kind: results[kind]["latency"] for kind in KINDS}
    for kind in KINDS:
        print(f"{codec} latency on loopback, {kind}: median {report['latency'][kind]['median_ms']} ms, "
              f"p95 {report['latency'][kind]['p95_ms']} ms", flush=True)

    at_4 = next(row for row in report["one_to_many"] if row["viewers"] == 4)
    processes = results["processes"]
    report["targets"] = {
        "cpu_ratio_at_4_viewers": {"value": at_4["cpu_ratio"]["processes"], "max": TARGET_CPU_RATIO_AT_4,
                                   "met": at_4["cpu_ratio"]["processes"] <= TARGET_CPU_RATIO_AT_4},
        "20_publishers_delivered": {"value": grid["processes"]["delivered"], "min": TARGET_DELIVERED,
                                    "met": grid["processes"]["delivered"] >= TARGET_DELIVERED},
        "latency_median_ms": {"value": processes["latency"]["median_ms"], "max": TARGET_LATENCY_MS,
                              "met": processes["latency"]["median_ms"] <= TARGET_LATENCY_MS},
    }
    return report


async def run(quick: bool, codecs: list[str]) -> dict:
    report: dict = {"quick": quick, "fps": FPS}
    for codec in codecs:
        report[codec] = await run_codec(codec, quick)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 4 viewers only (~1 min a codec)")
    parser.add_argument("--codecs", default="vp8,h264", help="video codecs to measure, of vp8,h264")
    parser.add_argument("--serve", choices=["passthrough", "stock"], help=argparse.SUPPRESS)
    parser.add_argument("--relay-process", nargs=2, metavar=("INDEX", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    codecs = [c for c in args.codecs.split(",") if c]
    if any(c not in MIME for c in codecs):
        parser.error(f"--codecs takes {', '.join(MIME)}")
    if args.serve:
        asyncio.run(serve(args.serve, codecs[0]))
        return
    if args.relay_process:
        asyncio.run(serve_relay_process(int(args.relay_process[0]), Path(args.relay_process[1]), bench_relay()))
        return
    started = time.monotonic()
    report = asyncio.run(run(args.quick, codecs))
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
