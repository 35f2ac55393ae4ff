"""The composition root: what runs in each process, built in one place.

- App process (server.py's lifespan): the live relay pool (or an in-process relay), the ingest
  pool (or an in-process upload store), a job worker with the job handlers, the webhook sender,
  the schedule (daily retention, health samples), the overdue sweeper, readiness, and what a
  revocation ends in them (apply_revocations); the login throttle.
- Ingest process (`python -m proctor_app.runtime ingest FD`, started by the pool): an upload store
  serving the app's socket.
- Relay process (`python -m proctor_app.runtime relay INDEX FOLDER`, started by the app workers'
  relay pools): a live relay serving every app worker on its socket.
- Processing worker (`python -m proctor_app worker`): a job worker alone.
- Background process (spawned by a job worker's BackgroundProcesses, at a lower CPU priority):
  grow steps.
Each gets the one settings cache and the one clock.
"""

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable
from pathlib import Path

from proctor_app.auth.throttle import LoginThrottle
from proctor_app.clock import system_clock
from proctor_app.config import config
from proctor_app.logs import configure_logging
from proctor_app.media.ingest.processes import IngestPool, serve
from proctor_app.media.ingest.store import UploadStore
from proctor_app.media.jobs.background import BackgroundProcesses
from proctor_app.media.jobs.worker import Worker
from proctor_app.media.live.ice import IceServers, IceSettings, parse_urls
from proctor_app.media.live.processes import RelayPool, pooled_session_id
from proctor_app.media.live.processes import serve as serve_relay
from proctor_app.media.live.relay import LiveRelay, ViewEndHook
from proctor_app.schedule import Schedule
from proctor_app.services.live import store_live_transition
from proctor_app.services.live_views import LiveViewer, store_view_end
from proctor_app.services.processing import job_handlers
from proctor_app.services.readiness import Readiness
from proctor_app.services.revocation import Revoked, RevokedListener
from proctor_app.services.settings import settings_cache
from proctor_app.services.webhooks import outbox
from proctor_app.services.webhooks.delivery import DeliveryLoop

INGEST_COMMAND = [sys.executable, "-m", "proctor_app.runtime", "ingest"]
RELAY_COMMAND = [sys.executable, "-m", "proctor_app.runtime", "relay"]


def set_up_process() -> None:
    """This process's log lines configured, and every change a webhook reports writing its event in
    its own transaction (idempotent)."""
    configure_logging()
    outbox.install()


# Every process imports this module first.
set_up_process()

clock = system_clock
settings = settings_cache

ice_servers = IceServers(IceSettings(parse_urls(config.ice_servers), config.turn_secret, config.public_ip,
                                     config.ice_transport_policy), clock)


def live_relay(on_view_end: ViewEndHook = store_view_end) -> LiveRelay:
    """The relay itself: in a relay process, or in the app process when there are none."""
    return LiveRelay(offline_after_s=lambda: settings()["live_offline_after_s"],
                     on_transition=store_live_transition,
                     enabled=lambda: settings()["live_video_enabled"], clock=clock, ice=ice_servers,
                     on_view_end=on_view_end)


# Every app worker forwards to the same relay processes (their sockets are per data folder and
# port), so publishers and viewers of an attempt meet whichever worker they reach.
relay_pool = RelayPool(config.live_relay_processes, config.data_dir / "live" / str(config.port),
                       RELAY_COMMAND) if config.live_relay_processes else None
relay: LiveRelay | RelayPool = relay_pool or live_relay()
# Snapshots and events are stored in the app process; chunks too when it has no ingest processes.
upload_store = UploadStore(settings, clock)
ingest_pool = IngestPool(config.ingest_processes, INGEST_COMMAND) if config.ingest_processes else None
# Wrong-password windows in Redis when there is one, so every app process counts the same failures.
login_throttle = LoginThrottle(config.redis_url or "memory://")


# Where a job worker of this process runs grow steps.
background = BackgroundProcesses(setup=set_up_process)


def job_worker(concurrency: int | None = None) -> Worker:
    """A worker for every kind of job, `concurrency` at once (default: the admin setting)."""
    return Worker(job_handlers(settings, background),
                  concurrency=concurrency or (lambda: int(settings()["processing_concurrency"])))


# The app process's own job worker (started in its lifespan unless PROCTOR_IN_APP_WORKER=0),
# watched by readiness.
app_worker = job_worker()
# The app process's webhook sender (started in its lifespan).
webhook_sender = DeliveryLoop(clock=clock)
readiness = Readiness(storage_root=lambda: config.storage_dir, ingest_pool=ingest_pool,
                      worker=app_worker if config.in_app_worker else None, monotonic=clock.monotonic)


def background_schedule() -> Schedule:
    """The daily retention run and the health sample every minute."""
    return Schedule(clock, live_publishers=lambda: relay.session_counts()["publish"])


def apply_revocations(loop: asyncio.AbstractEventLoop) -> RevokedListener:
    """What this app process does once a revocation committed (services/revocation.py), from the
    thread that committed it: its upload store forgets the tokens at once; on `loop` (the app's),
    the ingest processes forget them and the relay ends the user's (or API key's) views and the
    publications opened with the tokens."""
    async def close(revoked: Revoked) -> None:
        try:
            if ingest_pool is not None and revoked.token_hashes:
                await ingest_pool.forget_tokens(sorted(revoked.token_hashes))
            await relay.close_sessions([f"token:{h}" for h in revoked.token_hashes])
            if revoked.viewer_id is not None:
                await relay.close_sessions([LiveViewer(user_id=revoked.viewer_id).owner], revoked.attempt_ids)
            if revoked.api_key_id is not None:
                await relay.close_sessions([LiveViewer(api_key_id=revoked.api_key_id).owner])
        except Exception:  # nobody awaits this; the token revalidation still bounds the uploads
            logging.getLogger("proctor_app.revocation").exception("applying a revocation failed")

    def apply(revoked: Revoked) -> None:
        upload_store.forget_tokens(revoked.token_hashes)
        asyncio.run_coroutine_threadsafe(close(revoked), loop)

    return apply


def run_ingest_process(fd: int) -> None:
    """An ingest process: stores the chunks the app passes over the socket `fd` until it closes."""
    serve(socket.socket(fileno=fd), UploadStore(settings, clock))


def run_relay_process(index: int, folder: str) -> None:
    """A relay process: serves the app workers on its socket in `folder` until its stdin closes."""
    def view_end(session_id: str, *details) -> Awaitable[None]:
        # Audited under the id the workers gave out, so the start and end rows pair up.
        return store_view_end(pooled_session_id(index, session_id), *details)

    asyncio.run(serve_relay(index, Path(folder), live_relay(view_end)))


if __name__ == "__main__" and sys.argv[1:2] == ["ingest"]:
    run_ingest_process(int(sys.argv[2]))
if __name__ == "__main__" and sys.argv[1:2] == ["relay"]:
    run_relay_process(int(sys.argv[2]), sys.argv[3])
