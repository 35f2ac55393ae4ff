"""Work the app process does at start-up and in the background while it runs (what it runs is
built in runtime.py)."""

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from proctor_app.config import config
from proctor_app.db import migrate, session_scope, startup_lock
from proctor_app.demo import demo_mode, describe_demo, disable_demo_accounts, seed_demo
from proctor_app.runtime import (
    app_worker,
    apply_revocations,
    background,
    background_schedule,
    ingest_pool,
    relay,
    relay_pool,
    webhook_sender,
)
from proctor_app.services.attempts import close_overdue_attempts
from proctor_app.services.first_run import issue_setup_code
from proctor_app.services.revocation import on_revoked

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
    """Migrate; seed the demo data with PROCTOR_DEMO=1, else switch off the demo accounts that still
    have the published password; while no active admin exists, print a new first-run setup code."""
    with startup_lock():
        migrate()
        with session_scope() as db:
            if demo_mode():
                seed_demo(db)
            else:
                for email in disable_demo_accounts(db):
                    print(f"Demo account {email} deactivated (PROCTOR_DEMO is not 1)", flush=True)
            db.flush()
            code = issue_setup_code(db)
    if code is not None:
        print("No active administrator exists. Create one with `python -m proctor_app create-admin "
              f"--email ...`, or open /setup with this one-time setup code: {code}", flush=True)


@asynccontextmanager
async def lifespan():
    await asyncio.to_thread(_set_up_database)
    # What is alive now (the compiled app, modules) lives as long as the process: the collector
    # need not trace it again on every full collection while uploads stream in.
    gc.freeze()
    if demo_mode():
        print(describe_demo(f"http://localhost:{config.port}/"), flush=True)
    if ingest_pool is not None:
        await ingest_pool.start()
    if relay_pool is not None:
        await relay_pool.start()
    # Access taken away in this process also ends live sessions (on every relay) and cached upload tokens.
    stop_revocations = on_revoked(apply_revocations(asyncio.get_running_loop()))
    sweeper = asyncio.create_task(_sweep_overdue_attempts())
    # Processing jobs (finalize recordings); jobs a crash interrupted are taken up again. Off with
    # PROCTOR_IN_APP_WORKER=0, when workers run in processes of their own.
    worker = asyncio.create_task(app_worker.run()) if config.in_app_worker else None
    webhooks = asyncio.create_task(webhook_sender.run())
    # The daily retention run (the database lock keeps it to one process at a time), health samples.
    schedule = background_schedule()
    schedule.start()
    try:
        yield
    finally:
        stop_revocations()
        schedule.shutdown()
        sweeper.cancel()
        webhooks.cancel()
        if worker is not None:
            worker.cancel()
        await asyncio.gather(webhooks, *([worker] if worker else []), return_exceptions=True)
        background.close()
        await relay.close()
        if ingest_pool is not None:
            await ingest_pool.close()
