"""Recorded media over HTTP: our route (staff session + signed link + audit + ranges) against
Starlette's own FileResponse serving the same file from the same server, in the same run.

Measures whole-file downloads (MB/s) and the random small ranges a seeking <video> asks for
(requests/s). Prints ratios route/baseline; the last line is one JSON object.

    python bench/media_serving.py [--quick]
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_tmp = tempfile.TemporaryDirectory(prefix="bench-media-")
os.environ["PROCTOR_DATA_DIR"] = _tmp.name  # before proctor_app reads its configuration
os.environ.pop("PROCTOR_DATABASE_URL", None)
os.environ.pop("PROCTOR_STORAGE_DIR", None)

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlmodel import select  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import FileResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from proctor_app.api import media  # noqa: E402
from proctor_app.auth import sessions  # noqa: E402
from proctor_app.db import migrate, session_scope  # noqa: E402
from proctor_app.demo import DEMO_PASSWORD, seed_demo  # noqa: E402
from proctor_app.media import storage  # noqa: E402
from proctor_app.models import Exam, Recording, User, utcnow  # noqa: E402
from tests.support.factories import make_attempt  # noqa: E402

RANGE_BYTES = 256 * 1024
ROUNDS = 5


def _setup(size: int) -> tuple[Path, int, int]:
    """A recording of `size` random bytes; returns (file, attempt id, supervisor id)."""
    migrate()
    started = utcnow() - timedelta(hours=1)
    relative = f"{storage.processed_dir(1, started)}/camera.mp4"
    path = storage.absolute(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.randbytes(size))
    with session_scope() as db:
        seed_demo(db)
        exam = db.exec(select(Exam)).first()
        candidate = db.exec(select(User).where(User.email == "alice@example.com")).one()
        supervisor = db.exec(select(User).where(User.email == "supervisor@example.com")).one()
        attempt = make_attempt(db, exam, candidate, status="submitted", started_at=started,
                               deadline_at=started + timedelta(minutes=30), ended_at=started + timedelta(minutes=20))
        db.add(Recording(attempt_id=attempt.id, stream="camera", status="completed", mp4_path=relative))
        return path, attempt.id, supervisor.id


def _serve(app: Starlette) -> tuple[uvicorn.Server, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _timed(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smaller file and fewer requests")
    args = parser.parse_args()
    size = (8 if args.quick else 64) * 1024 * 1024
    whole_repeat, range_repeat = (5, 200) if args.quick else (10, 1000)

    path, attempt_id, supervisor_id = _setup(size)
    token, _ = sessions.login("supervisor@example.com", DEMO_PASSWORD)
    app = Starlette(routes=[*media.routes, Route("/baseline", lambda request: FileResponse(path))])
    server, base = _serve(app)
    ours = media.recording_link(supervisor_id, attempt_id, "camera", "video")
    rng = random.Random(7)
    urls = {"baseline": "/baseline", "route": ours}
    elapsed = {(name, kind): 0.0 for name in urls for kind in ("whole", "range")}
    try:
        with httpx.Client(base_url=base, cookies={sessions.SESSION_COOKIE: token}, timeout=60) as client:
            for url in urls.values():
                assert len(client.get(url).content) == size  # warm-up and sanity

            def one_range(url: str, start: int) -> None:
                response = client.get(url, headers={"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"})
                assert response.status_code == 206 and len(response.content) == RANGE_BYTES

            # Alternating rounds, so a change in machine load hits both sides alike.
            for _ in range(ROUNDS):
                offsets = [rng.randrange(0, size - RANGE_BYTES) for _ in range(range_repeat // ROUNDS)]
                for name, url in urls.items():
                    elapsed[name, "whole"] += _timed(lambda: client.get(url).content, whole_repeat // ROUNDS)
                    start = time.perf_counter()
                    for offset in offsets:
                        one_range(url, offset)
                    elapsed[name, "range"] += time.perf_counter() - start
    finally:
        server.should_exit = True
    whole_total, range_total = whole_repeat // ROUNDS * ROUNDS, range_repeat // ROUNDS * ROUNDS
    results = {name: {"whole_mb_s": size * whole_total / elapsed[name, "whole"] / 1e6,
                      "ranges_per_s": range_total / elapsed[name, "range"]} for name in urls}
    ratios = {key: results["route"][key] / results["baseline"][key] for key in results["route"]}
    for key in ratios:
        print(f"{key:>13}: route {results['route'][key]:9.1f}  FileResponse {results['baseline'][key]:9.1f}"
              f"  ratio {ratios[key]:.2f}")
    print(json.dumps({"bench": "media_serving", "file_mb": size / 1e6, "range_kib": RANGE_BYTES // 1024,
                      "route": results["route"], "baseline_fileresponse": results["baseline"],
                      "ratio_route_to_baseline": ratios}))


if __name__ == "__main__":
    main()
