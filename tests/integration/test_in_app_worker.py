"""PROCTOR_IN_APP_WORKER: the app process runs a job worker unless it is set to 0 (the worker then
runs as `python -m proctor_app worker`, e.g. deploy/proctor-worker.service)."""

import asyncio
import dataclasses
import os
import subprocess
import sys

import pytest

from proctor_app import server
from proctor_app.config import config
from tests.support.server import ROOT

pytestmark = pytest.mark.usefixtures("demo_db")


def _workers_started_by_lifespan(monkeypatch, in_app_worker: bool) -> int:
    started = []

    class RecordedWorker:
        async def run(self):
            started.append(self)
            await asyncio.Event().wait()

    monkeypatch.setenv("PROCTOR_DEMO", "1")  # keep the session's demo accounts active
    monkeypatch.setattr(server, "config", dataclasses.replace(config, in_app_worker=in_app_worker))
    monkeypatch.setattr(server, "ingest_pool", None)
    monkeypatch.setattr(server, "app_worker", RecordedWorker())

    async def start_and_stop():
        async with server.lifespan():
            await asyncio.sleep(0)  # let the tasks the lifespan made start

    asyncio.run(start_and_stop())
    return len(started)


def test_the_app_runs_a_job_worker_by_default(monkeypatch):
    assert _workers_started_by_lifespan(monkeypatch, in_app_worker=True) == 1


def test_no_job_worker_in_the_app_with_in_app_worker_off(monkeypatch):
    assert _workers_started_by_lifespan(monkeypatch, in_app_worker=False) == 0


def _in_child(value: str | None, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PROCTOR_IN_APP_WORKER"}
    if value is not None:
        env["PROCTOR_IN_APP_WORKER"] = value
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.parametrize("value, expected", [(None, True), ("1", True), ("0", False), (" 0 ", False)])
def test_the_variable_sets_it(value, expected):
    assert _in_child(value, "from proctor_app.config import config; print(config.in_app_worker)") == str(expected)


@pytest.mark.parametrize("value, ready", [(None, False), ("0", True)])
def test_readiness_waits_for_the_apps_worker_only_when_it_runs_one(value, ready):
    """Without an in-app worker, /api/ready must not wait for one that never starts."""
    check = _in_child(value, "from proctor_app.runtime import readiness; print(readiness.job_worker())")
    assert check.startswith(f"Check(ok={ready}"), check
