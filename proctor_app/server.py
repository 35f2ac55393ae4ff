"""Work the app process does at start-up and in the background while it runs (what it runs is
built in runtime.py)."""

import asyncio
import gc
import logging
import os
from contextlib import asynccontextmanager

from proctor_app.config import config
from proctor_app.db import migrate, session_scope, startup_lock
from proctor_app.runtime import ingest_pool, job_worker, relay, retention_schedule
from proctor_app.services.attempts import close_overdue_attempts

log = logging.getLogger("proctor_app")
SWEEP_INTERVAL_S = 5


async def _sweep_overdue_attempts() -> None:
    while True:
        try:
            with session_scope() as db:
                close_overdue_attempts(db)
        except Exception:  # keep sweeping; one bad pass must not end the loop
            log.exception("closing overdue attempts failed")
        await asyncio.sleep(SWEEP_INTERVAL_S)


def _set_up_database() -> None:
    with startup_lock():
        migrate()
        if os.environ.get("PROCTOR_DEMO") == "1":
            from proctor_app.demo import seed_demo

            with session_scope() as db:
                seed_demo(db)


@asynccontextmanager
async def lifespan():
    await asyncio.to_thread(_set_up_database)
    # What is alive now (the compiled app, modules) lives as long as the process: the collector
    # need not trace it again on every full collection while uploads stream in.
    gc.freeze()
    if os.environ.get("PROCTOR_DEMO") == "1":
        from proctor_app.demo import describe_demo

        print(describe_demo(f"http://localhost:{config.port}/"), flush=True)
    if ingest_pool is not None:
        await ingest_pool.start()
    sweeper = asyncio.create_task(_sweep_overdue_attempts())
    # Processing jobs (finalize recordings); jobs a crash interrupted are taken up again.
    worker = asyncio.create_task(job_worker().run())
    # The daily retention run (the database lock keeps it to one process at a time).
    schedule = retention_schedule()
    schedule.start()
    try:
        yield
    finally:
        schedule.shutdown()
        sweeper.cancel()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await relay.close()
        if ingest_pool is not None:
            await ingest_pool.close()
