"""HLS ladder benchmark: the ladder of a 480p camera recording's MP4 (640x480 30 fps H.264 with a
keyframe every 2 s and Opus audio, as finalize's copy makes it), against a bare ffmpeg run of the
same ladder (the same renditions and options, by hand) on the same MP4, in the same run.

    python bench/hls.py             # a 60-minute recording
    python bench/hls.py --quick     # a 3-minute one; the 60-minute figures are extrapolated

Target: the whole ladder of a 60-minute 480p camera recording within 10 minutes on 2 cores.
Figures: `ladder_s` is make_ladder (probe, one ffmpeg run for every rendition, playlists parsed
and checked against the files, master playlist); `baseline_s` the bare ffmpeg; each the best of
alternating runs. `per_media_min_s` = seconds per minute of media; `extrapolated_60min_s` (only
with --quick or --minutes) = that times 60. On a shared machine wall times move with the load:
the ffmpeg CPU seconds (`*_cpu_s`) do not. The last line printed is one JSON object.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_60MIN_S = 600.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_ladder(mp4: Path, out: Path) -> float:
    """The ladder of a 640x480 source by hand: 360p encoded, 480p copied, audio copied."""
    from proctor_app.media.processing import ffmpeg, graphs, hls

    hls_options = ["-f", "hls", "-hls_time", str(graphs.GOP_S), "-hls_playlist_type", "vod",
                   "-hls_segment_type", "fmp4", "-hls_flags", "independent_segments"]
    rate = hls.MAXRATE_KBPS[360]
    out.mkdir()
    started = time.perf_counter()
    subprocess.run(["nice", "-n", str(ffmpeg.FFMPEG_NICE), ffmpeg.FFMPEG, "-hide_banner", "-nostdin",
                    "-loglevel", "error", "-y", "-i", str(mp4),
                    "-map", "0:v", "-map", "0:a", "-vf", "scale=480:360", "-c:v", "libx264",
                    "-preset", graphs.X264_PRESET, "-crf", str(hls.HLS_CRF), "-pix_fmt", "yuv420p",
                    "-x264-params", graphs.X264_PARAMS, "-maxrate", f"{rate}k", "-bufsize", f"{2 * rate}k",
                    "-bf", "0", "-force_key_frames", f"expr:gte(t,n_forced*{graphs.GOP_S})", "-c:a", "copy",
                    *hls_options, "-hls_fmp4_init_filename", "360p_init.mp4",
                    "-hls_segment_filename", str(out / "360p_%05d.m4s"), str(out / "360p.m3u8"),
                    "-map", "0:v", "-map", "0:a", "-c", "copy",
                    *hls_options, "-hls_fmp4_init_filename", "480p_init.mp4",
                    "-hls_segment_filename", str(out / "480p_%05d.m4s"), str(out / "480p.m3u8")],
                   check=True)
    return time.perf_counter() - started


def source_mp4(work: Path, seconds: float, clip_s: float) -> Path:
    """A browser-like recording copied into an MP4 as finalize's copy path does."""
    from proctor_app.media.processing.ffmpeg import FFMPEG
    from tests.support import samples

    mkv = samples.encode(work / "camera.mkv", seconds, "h264", size=(640, 480), fps=30, clip_s=clip_s)
    mp4 = work / "camera.mp4"
    subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(mkv),
                    "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(mp4)], check=True)
    mkv.unlink()
    return mp4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 3-minute recording, figures extrapolated")
    parser.add_argument("--minutes", type=float, default=None, help="recording length (default 60)")
    parser.add_argument("--runs", type=int, default=None, help="alternating runs of each (default 2; 1 for 60 min)")
    args = parser.parse_args()
    minutes = args.minutes or (3.0 if args.quick else 60.0)
    runs = args.runs or (1 if minutes >= 30 else 2)
    work = Path(tempfile.mkdtemp(prefix="bench-hls-"))
    os.environ["PROCTOR_DATA_DIR"] = str(work / "data")  # before proctor_app reads its configuration
    sys.path.insert(0, str(ROOT))
    from proctor_app.media.processing.hls import make_ladder

    load = os.getloadavg()[0]
    try:
        t = time.perf_counter()
        mp4 = source_mp4(work, minutes * 60, 30.0)
        prepare_s = time.perf_counter() - t
        ladders, baselines, ladder_cpu, baseline_cpu = [], [], [], []
        for run in range(runs):
            cpu = children_cpu_s()
            baselines.append(bare_ladder(mp4, work / f"bare-{run}"))
            baseline_cpu.append(children_cpu_s() - cpu)
            cpu = children_cpu_s()
            t = time.perf_counter()
            renditions = asyncio.run(make_ladder(mp4, work / f"ladder-{run}"))
            ladders.append(time.perf_counter() - t)
            ladder_cpu.append(children_cpu_s() - cpu)
            shutil.rmtree(work / f"bare-{run}")
            if run + 1 < runs:
                shutil.rmtree(work / f"ladder-{run}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ladder_s, baseline_s = min(ladders), min(baselines)
    per_min = ladder_s / minutes
    result = {
        "bench": "hls", "quick": args.quick, "media_min": minutes, "runs": runs, "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(load, 2),
        "renditions": [f"{r.name} {'copy' if r.copy else 'x264'}" for r in renditions],
        "ladder_s": round(ladder_s, 2), "baseline_s": round(baseline_s, 2),
        "ratio": round(ladder_s / baseline_s, 3),
        "per_media_min_s": round(per_min, 2), "baseline_per_media_min_s": round(baseline_s / minutes, 2),
        "ladder_ffmpeg_cpu_s": round(min(ladder_cpu), 2), "baseline_ffmpeg_cpu_s": round(min(baseline_cpu), 2),
        "ladder_s_all": [round(x, 2) for x in ladders], "baseline_s_all": [round(x, 2) for x in baselines],
        "prepare_source_s": round(prepare_s, 1), "target_60min_s": TARGET_60MIN_S,
    }
    sixty = ladder_s if minutes == 60 else per_min * 60
    result["extrapolated_60min_s" if minutes != 60 else "measured_60min_s"] = round(sixty, 1)
    result["meets_target"] = sixty <= TARGET_60MIN_S
    label = "measured" if minutes == 60 else f"extrapolated from {minutes:g} min"
    print(f"ladder of a {minutes:g}-minute 480p camera recording ({', '.join(result['renditions'])}): "
          f"{ladder_s:.1f} s ({per_min:.2f} s per media minute); bare ffmpeg {baseline_s:.1f} s "
          f"({baseline_s / minutes:.2f} s per media minute); ratio {ladder_s / baseline_s:.2f}; "
          f"60 minutes ({label}): {sixty:.0f} s, target {TARGET_60MIN_S:.0f} s", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
