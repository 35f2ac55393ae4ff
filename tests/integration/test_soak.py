"""The soak bench at CI size: the real server under simulated candidates (chunks, snapshots,
events, a few live publishers and a proctor watching them) for a short while, then their attempts
submitted and processed. It fails on anything lost, jobs left or failed, or server memory or
descriptors growing after the warm-up (bench/soak.py says why its bounds catch a leak)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_short_soak_loses_nothing_finishes_its_jobs_and_leaks_nothing():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--candidates", "30", "--minutes", "2",
                          "--live-share", "0.1", "--viewers", "1", "--warmup", "1", "--drain-s", "30",
                          "--processing-timeout-s", "300"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.stdout.strip(), run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    shown = run.stdout[-4000:]
    assert report["acknowledged"]["chunk"] >= 30 * 39, shown  # a 2-minute recording in 3 s pieces
    assert report["lost"] == {"chunks": 0, "snapshots": 0, "events": 0}, shown
    assert report["unfinished_queues"] == 0, shown
    assert report["jobs_left"] == 0 and report["jobs_failed"] == 0, shown
    assert report["jobs"]["done"] >= 30, shown  # each attempt's MP4 (and its ladder)
    assert report["live_delivered_min"] > 0.8, shown
    assert report["rss_mb_per_min"] <= report["rss_bound_mb_per_min"], shown
    assert report["fds_per_min"] <= report["fd_bound_per_min"], shown
    assert report["ok"] and run.returncode == 0, shown
