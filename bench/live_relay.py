"""Server CPU of the live relay per relayed stream, against aiortc's stock relay in the same run.

The relay runs in a child process (only its CPU is measured); this process is the load: aiortc
publishers sending pre-encoded VP8 (no encoding cost) and viewers that count encoded frames (no
decoding cost). Loads, each through the passthrough relay and through aiortc's stock MediaRelay
(decode once, re-encode per viewer):
- one publisher (640x480, the focused view's camera) to N viewers;
- M publishers (320x240, the grid's tiles) with one viewer each;
- glass-to-glass latency on loopback: frames drawn with their number, encoded, relayed, decoded
  and read back.

    python bench/live_relay.py [--quick]

Targets (2 cores): at 4 viewers at most 1/5 of the stock relay's CPU; 20 publishers each with a
viewer sustained (>= 95% of frames delivered); median latency at most 300 ms. The last line
printed is one JSON object.
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

from proctor_app.media.live.relay import LiveRelay  # noqa: E402
from tests.support.live_clients import (  # noqa: E402
    EncodedSource,
    NumberedCamera,
    Publisher,
    StockRelay,
    Viewer,
    encode_clip,
)

FPS = 15
PUBLISHERS = 20
TARGET_CPU_RATIO_AT_4 = 0.2
TARGET_DELIVERED = 0.95
TARGET_LATENCY_MS = 300


# -- the relay process ------------------------------------------------------------------------

async def _no_events(*_args) -> None:
    return None


async def serve(kind: str) -> None:
    """Answer publish/view requests (JSON lines on stdin) with the relay of `kind`."""
    relay = LiveRelay(offline_after_s=lambda: 60.0, on_transition=_no_events) \
        if kind == "passthrough" else StockRelay()
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
    def __init__(self, kind: str):
        self.kind = kind
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self):
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", self.kind, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=dict(os.environ))
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

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    async def publisher(self, attempt: int, track) -> Publisher:
        publisher = Publisher({"camera": track})
        await publisher.start(lambda sdp: self.ask(op="publish", attempt=attempt, sdp=sdp))
        return publisher

    async def viewer(self, attempt: int, decode: bool = False) -> Viewer:
        viewer = Viewer(decode=decode)
        await viewer.start(lambda sdp: self.ask(op="view", attempt=attempt, sdp=sdp))
        return viewer


async def measure(relay: RelayProcess, viewers: list[Viewer], warmup: float, window: float) -> dict:
    # Every viewer receiving (connections are set up concurrently), then a settling time.
    await asyncio.gather(*[v.wait_frames(1, timeout=30) for v in viewers])
    await asyncio.sleep(warmup)
    cpu, counts, start = relay.cpu_s(), [v.count for v in viewers], time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - start
    cpu_pct = 100 * (relay.cpu_s() - cpu) / elapsed
    delivered = min((v.count - c) / (FPS * elapsed) for v, c in zip(viewers, counts))
    return {"cpu_pct": round(cpu_pct, 1), "per_stream_pct": round(cpu_pct / len(viewers), 2),
            "delivered": round(min(delivered, 1.0), 3)}


async def close_all(*peers) -> None:
    for peer in peers:
        await peer.close()


async def one_to_many(relay: RelayProcess, clip: list[bytes], counts: list[int], warmup: float,
                      window: float) -> list[dict]:
    results = []
    publisher = await relay.publisher(0, EncodedSource(clip, FPS))
    viewers = []
    for count in counts:
        viewers += await asyncio.gather(*[relay.viewer(0) for _ in range(count - len(viewers))])
        results.append({"viewers": count, **await measure(relay, viewers, warmup, window)})
    await close_all(publisher, *viewers)
    return results


async def many_publishers(relay: RelayProcess, clip: list[bytes], count: int, warmup: float,
                          window: float) -> dict:
    attempts = range(1, count + 1)
    publishers = await asyncio.gather(*[relay.publisher(a, EncodedSource(clip, FPS)) for a in attempts])
    viewers = await asyncio.gather(*[relay.viewer(a) for a in attempts])
    result = {"publishers": count, **await measure(relay, viewers, warmup, window)}
    await close_all(*publishers, *viewers)
    return result


async def latency(relay: RelayProcess, seconds: float) -> dict:
    camera = NumberedCamera(640, 480, FPS)
    attempt = 1000
    publisher = await relay.publisher(attempt, camera)
    viewer = await relay.viewer(attempt, decode=True)
    await asyncio.sleep(seconds)
    settled = viewer.started_at + 1.0
    samples = sorted(1000 * (at - camera.made_at[number]) for at, _, _, number in viewer.frames
                     if at > settled and number in camera.made_at)
    await close_all(publisher, viewer)
    return {"median_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1), "frames": len(samples)}


async def measure_relay(kind: str, quick: bool, camera_clip: list[bytes], tile_clip: list[bytes]) -> dict:
    """All loads through one relay process of `kind`, one after the other."""
    warmup, window = (1.0, 3.0) if quick else (3.0, 8.0)
    async with RelayProcess(kind) as relay:
        return {
            "one_to_many": await one_to_many(relay, camera_clip, [4] if quick else [1, 2, 4, 8],
                                             warmup, window),
            "many_publishers": await many_publishers(relay, tile_clip, PUBLISHERS, warmup, window),
            "latency": await latency(relay, 3.5 if quick else 12.0),
        }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


async def run(quick: bool) -> dict:
    camera_clip = encode_clip(640, 480, FPS, seconds=2, bitrate_k=500)
    tile_clip = encode_clip(320, 240, FPS, seconds=2, bitrate_k=150)
    mine = await measure_relay("passthrough", quick, camera_clip, tile_clip)
    stock = await measure_relay("stock", quick, camera_clip, tile_clip)

    report: dict = {"quick": quick, "fps": FPS, "one_to_many": []}
    for ours, theirs in zip(mine["one_to_many"], stock["one_to_many"]):
        row = {"viewers": ours["viewers"], "passthrough": ours, "stock": theirs,
               "cpu_ratio": ratio(ours["cpu_pct"], theirs["cpu_pct"])}
        report["one_to_many"].append(row)
        print(f"1 publisher -> {row['viewers']} viewers: passthrough {ours['cpu_pct']}% of a core "
              f"({ours['per_stream_pct']}% per stream), stock {theirs['cpu_pct']}% "
              f"({theirs['per_stream_pct']}% per stream): ratio {row['cpu_ratio']}", flush=True)

    grid = {"passthrough": mine["many_publishers"], "stock": stock["many_publishers"]}
    report["many_publishers"] = {**grid, "cpu_ratio": ratio(grid["passthrough"]["cpu_pct"],
                                                             grid["stock"]["cpu_pct"])}
    for kind, result in grid.items():
        print(f"{PUBLISHERS} publishers, one viewer each, {kind}: {result['cpu_pct']}% of a core "
              f"({result['per_stream_pct']}% per stream), {result['delivered']:.1%} of frames delivered",
              flush=True)
    print(f"  ratio passthrough/stock: {report['many_publishers']['cpu_ratio']}", flush=True)

    report["latency"] = {"passthrough": mine["latency"], "stock": stock["latency"],
                         "ratio": ratio(mine["latency"]["median_ms"], stock["latency"]["median_ms"])}
    for kind in ("passthrough", "stock"):
        print(f"latency on loopback, {kind}: median {report['latency'][kind]['median_ms']} ms, "
              f"p95 {report['latency'][kind]['p95_ms']} ms", flush=True)

    at_4 = next(row for row in report["one_to_many"] if row["viewers"] == 4)
    report["targets"] = {
        "cpu_ratio_at_4_viewers": {"value": at_4["cpu_ratio"], "max": TARGET_CPU_RATIO_AT_4,
                                   "met": at_4["cpu_ratio"] <= TARGET_CPU_RATIO_AT_4},
        "20_publishers_delivered": {"value": grid["passthrough"]["delivered"], "min": TARGET_DELIVERED,
                                    "met": grid["passthrough"]["delivered"] >= TARGET_DELIVERED},
        "latency_median_ms": {"value": report["latency"]["passthrough"]["median_ms"],
                              "max": TARGET_LATENCY_MS,
                              "met": report["latency"]["passthrough"]["median_ms"] <= TARGET_LATENCY_MS},
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 4 viewers only (< 60 s)")
    parser.add_argument("--serve", choices=["passthrough", "stock"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    started = time.monotonic()
    report = asyncio.run(run(args.quick))
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
