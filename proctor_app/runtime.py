"""The composition root: what runs in each process, built in one place.

- App process (server.py's lifespan): the live relay, the ingest pool (or an in-process upload
  store), a job worker with the job handlers, the daily retention schedule, the overdue sweeper.
- Ingest process (`python -m proctor_app.runtime ingest FD`, started by the pool): an upload store
  serving the app's socket.
- Processing worker (`python -m proctor_app worker`): a job worker alone.
Each gets the one settings cache and the one clock.
"""

import logging
import socket
import sys

from proctor_app.clock import system_clock
from proctor_app.config import config
from proctor_app.media.ingest.processes import IngestPool, serve
from proctor_app.media.ingest.store import UploadStore
from proctor_app.media.jobs.worker import Worker
from proctor_app.media.live.ice import IceServers, IceSettings, parse_urls
from proctor_app.media.live.relay import LiveRelay
from proctor_app.schedule import Schedule
from proctor_app.services.live import store_live_transition
from proctor_app.services.processing import job_handlers
from proctor_app.services.settings import settings_cache

INGEST_COMMAND = [sys.executable, "-m", "proctor_app.runtime", "ingest"]

clock = system_clock
settings = settings_cache

ice_servers = IceServers(IceSettings(parse_urls(config.ice_servers), config.turn_secret, config.public_ip,
                                     config.ice_transport_policy), clock)
relay = LiveRelay(offline_after_s=lambda: settings()["live_offline_after_s"],
                  on_transition=store_live_transition,
                  enabled=lambda: settings()["live_video_enabled"], clock=clock, ice=ice_servers)
# Snapshots and events are stored in the app process; chunks too when it has no ingest processes.
upload_store = UploadStore(settings, clock)
ingest_pool = IngestPool(config.ingest_processes, INGEST_COMMAND) if config.ingest_processes else None


def job_worker(concurrency: int | None = None) -> Worker:
    """A worker for every kind of job, `concurrency` at once (default: the admin setting)."""
    return Worker(job_handlers(settings),
                  concurrency=concurrency or (lambda: int(settings()["processing_concurrency"])))


def retention_schedule() -> Schedule:
    return Schedule(clock)


def run_ingest_process(fd: int) -> None:
    """An ingest process: stores the chunks the app passes over the socket `fd` until it closes."""
    logging.basicConfig(level=logging.WARNING)
    serve(socket.socket(fileno=fd), UploadStore(settings, clock))


if __name__ == "__main__" and sys.argv[1:2] == ["ingest"]:
    run_ingest_process(int(sys.argv[2]))
