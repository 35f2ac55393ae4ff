"""The integration API under load, on PostgreSQL (127.0.0.1:5432, database `test`, a scratch schema
of its own, dropped at the end):

- sessions created per second through POST /api/v1/sessions (the app in process, over ASGI, a few
  requests at a time);
- GET /api/v1/sessions page latency (p50/p99, limit 100, walking pages by cursor) with 100,000
  sessions of one organisation, against the bare SQL query of the same pages in the same run
  (the columns a page shows, on a connection held open) (target: p99 within 3x of the bare query).
  The API's figure is the app's whole answer (key check, routing, validation, query, JSON), the
  request handed to it as the server hands it (an ASGI call); `client_*` adds httpx's in-process
  client around it, which costs about as much as the app itself and is the caller's, not the API's.
  The last line printed is one JSON object.

    python bench/api.py [--sessions 100000] [--creates 1000] [--pages 400]
"""

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
POSTGRES_URL = os.environ.get("PROCTOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCHEMA = f"bench_api_{uuid.uuid4().hex[:8]}"
_tmp = tempfile.TemporaryDirectory(prefix="bench-api-")
# Before proctor_app reads its configuration: the app uses the scratch schema.
os.environ["PROCTOR_DATA_DIR"] = _tmp.name
os.environ["PROCTOR_DATABASE_URL"] = f"{POSTGRES_URL}?options=-csearch_path%3D{SCHEMA}"

import httpx  # noqa: E402

# httpx's in-process transport tries `import sniffio` on every request: where it is not installed
# that is a search of the whole import path each time, a cost of this client and not of the API.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None

from proctor_app.api import build_api  # noqa: E402
from proctor_app.db import get_engine, migrate, session_scope  # noqa: E402
from tests.support.api import make_caller, session_body  # noqa: E402

LIMIT = 100
# The query GET /api/v1/sessions runs for a page after a cursor, written out by hand: the columns a
# listed session shows (and the id its cursor needs), nothing more.
BARE_COLUMNS = ("SELECT s.id, s.public_id, s.external_id, a.status, s.created_at, a.started_at, a.ended_at"
                " FROM api_sessions s JOIN attempts a ON a.id = s.attempt_id")
BARE_PAGE = sa.text(BARE_COLUMNS + " WHERE s.organisation_id = :org AND (s.created_at, s.id) < (:at, :id)"
                    " ORDER BY s.created_at DESC, s.id DESC LIMIT :limit")
BARE_FIRST = sa.text(BARE_COLUMNS + " WHERE s.organisation_id = :org ORDER BY s.created_at DESC, s.id DESC"
                     " LIMIT :limit")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 2)


def fill(organisation_id: int, count: int) -> None:
    """`count` sessions (each with its exam, candidate and attempt, as the API makes them), one
    second apart, in four statements."""
    with get_engine().begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO exams (title, description, duration_minutes, live_video, recording, screen_recording,"
            " recording_required, snapshot_interval_s, created_at, updated_at, organisation_id, api_session)"
            " SELECT 'bench-' || g, '', 60, true, true, false, true, 60, now(), now(), :org, true"
            " FROM generate_series(1, :n) g"), {"org": organisation_id, "n": count})
        conn.execute(sa.text(
            "INSERT INTO users (email, name, role, password_hash, active, created_at,"
            " organisation_id, is_install_admin)"
            " SELECT 'bench-' || g || '@api-session.invalid', 'Bench', 'candidate', '!', true, now(), :org, false"
            " FROM generate_series(1, :n) g"), {"org": organisation_id, "n": count})
        conn.execute(sa.text(
            "INSERT INTO attempts (exam_id, candidate_id, status, review_status, review_notes, legal_hold)"
            " SELECT e.id, u.id, 'not_started', 'not_reviewed', '', false FROM exams e"
            " JOIN users u ON u.email = e.title || '@api-session.invalid' WHERE e.title LIKE 'bench-%'"))
        conn.execute(sa.text(
            "INSERT INTO api_sessions (public_id, organisation_id, attempt_id, external_id, metadata,"
            " candidate_name, launch_token_hash, launch_expires_at, created_at)"
            " SELECT 'ses_' || md5(a.id::text || 'b'), :org, a.id, 'bench-' || a.id, '{}', 'Bench',"
            " md5(a.id::text), now(), now() - (a.id || ' seconds')::interval"
            " FROM attempts a JOIN exams e ON e.id = a.exam_id WHERE e.title LIKE 'bench-%'"),
            {"org": organisation_id})
    # As after any bulk load: otherwise autovacuum works through the new rows during the timing.
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


async def create_rate(client: httpx.AsyncClient, headers: dict, count: int, concurrency: int = 4) -> float:
    queue = iter(range(count))

    async def worker():
        for _ in queue:
            response = await client.post("/api/v1/sessions", json=session_body(), headers=headers)
            assert response.status_code == 201, response.text

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def asgi_get(app, path: str, params: dict, headers: dict) -> tuple[int, bytes]:
    """A GET handed to the ASGI app as a server hands it: (status, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "server": ("bench", 80), "client": ("127.0.0.1", 50000), "root_path": "",
             "path": path, "raw_path": path.encode(), "query_string": urlencode(params).encode(),
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
    status, body = 0, []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(body)


async def warm_up(app, headers: dict, pages: int = 10) -> None:
    """Walk a few pages first, as a running server has: the first page after a cursor compiles its
    statement, and psycopg prepares a statement on its sixth run."""
    cursor = None
    for _ in range(pages):
        params = {"limit": LIMIT} | ({"cursor": cursor} if cursor else {})
        status, raw = await asgi_get(app, "/api/v1/sessions", params, headers)
        assert status == 200, raw[:500]
        cursor = json.loads(raw)["next_cursor"]


async def page_latencies(app, client: httpx.AsyncClient, headers: dict, organisation_id: int,
                         pages: int) -> tuple[list[float], list[float], list[float]]:
    """Walk `pages` pages by cursor; time each page through the API (a bare ASGI call, then
    through the in-process client), then the bare query of it."""
    api, through_client, bare, cursor, previous = [], [], [], None, None
    with get_engine().connect() as conn:
        # The bare query is warmed up too: its statements compiled and prepared.
        for _ in range(10):
            last = conn.execute(BARE_FIRST, {"org": organisation_id, "limit": LIMIT + 1}).all()[-1]
            conn.execute(BARE_PAGE, {"org": organisation_id, "at": last.created_at, "id": last.id,
                                     "limit": LIMIT + 1}).all()
        for _ in range(pages):
            params = {"limit": LIMIT} | ({"cursor": cursor} if cursor else {})
            start = time.perf_counter()
            status, raw = await asgi_get(app, "/api/v1/sessions", params, headers)
            api.append(time.perf_counter() - start)
            start = time.perf_counter()
            response = await client.get("/api/v1/sessions", params=params, headers=headers)
            through_client.append(time.perf_counter() - start)
            body = json.loads(raw)
            assert status == 200 and len(body["items"]) == LIMIT and response.json() == body, raw[:500]
            last = body["items"][-1]
            row = conn.execute(sa.text("SELECT created_at, id FROM api_sessions WHERE public_id = :p"),
                               {"p": last["id"]}).one()
            start = time.perf_counter()
            if previous is None:
                rows = conn.execute(BARE_FIRST, {"org": organisation_id, "limit": LIMIT + 1}).all()
            else:
                rows = conn.execute(BARE_PAGE, {"org": organisation_id, "at": previous[0], "id": previous[1],
                                                "limit": LIMIT + 1}).all()
            bare.append(time.perf_counter() - start)
            assert len(rows) == LIMIT + 1
            previous, cursor = row, body["next_cursor"]
    return api, through_client, bare


async def run(args) -> dict:
    with session_scope() as db:
        creator = make_caller(db)
        reader = make_caller(db)
    fill(reader.organisation_id, args.sessions)
    app = build_api()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        await warm_up(app, reader.headers)
        rate = await create_rate(client, creator.headers, args.creates)
        api, through_client, bare = await page_latencies(app, client, reader.headers, reader.organisation_id,
                                                         args.pages)
    return {"sessions": args.sessions, "creates": args.creates, "creates_per_s": round(rate, 1),
            "pages": args.pages, "page_limit": LIMIT,
            "api_p50_ms": ms(api, 0.5), "api_p99_ms": ms(api, 0.99),
            "bare_p50_ms": ms(bare, 0.5), "bare_p99_ms": ms(bare, 0.99),
            "api_min_ms": ms(api, 0), "bare_min_ms": ms(bare, 0),
            "client_p50_ms": ms(through_client, 0.5), "client_p99_ms": ms(through_client, 0.99),
            "p99_ratio": round(percentile(api, 0.99) / percentile(bare, 0.99), 2),
            "api_mean_ms": round(statistics.mean(api) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=400)
    args = parser.parse_args()
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{SCHEMA}"'))
    try:
        migrate()
        result = asyncio.run(run(args))
    finally:
        get_engine().dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{SCHEMA}" CASCADE'))
        admin.dispose()
    print(f"sessions created: {result['creates_per_s']}/s ({result['creates']} through the API)")
    print(f"GET /api/v1/sessions with {result['sessions']} sessions, {result['pages']} pages of {LIMIT}: "
          f"API p50 {result['api_p50_ms']} ms, p99 {result['api_p99_ms']} ms; bare SQL p50 "
          f"{result['bare_p50_ms']} ms, p99 {result['bare_p99_ms']} ms; p99 ratio {result['p99_ratio']} (target <= 3); "
          f"fastest page: API {result['api_min_ms']} ms, bare {result['bare_min_ms']} ms; "
          f"with httpx's in-process client around the API: p50 {result['client_p50_ms']} ms, "
          f"p99 {result['client_p99_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
