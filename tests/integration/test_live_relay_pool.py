"""Relay processes (media/live/processes.py) as two app workers see them, without the app: two
RelayPools on one folder start one relay process per index between them; a publisher through one
and a viewer through the other meet; both mirror the statuses; a killed relay is replaced."""

import asyncio
import os
import signal

import pytest

from proctor_app.config import config
from proctor_app.media.live.offers import LiveRequestError
from proctor_app.media.live.processes import RelayPool
from proctor_app.media.live.status import LiveStatus
from proctor_app.runtime import RELAY_COMMAND
from tests.support.live_clients import NumberedCamera, Publisher, Viewer, eventually, run_async
from tests.support.live_exams import make_live_exam
from tests.support.server import relay_processes

pytestmark = pytest.mark.usefixtures("demo_db")
RELAYS = 2


def own_relays() -> list[tuple[int, int]]:
    """This process's relay processes (the session's app server, if up, has its own below it)."""
    return relay_processes(os.getpid(), recursive=False)


async def publish(pool: RelayPool, attempt_id: int) -> tuple[Publisher, str]:
    publisher = Publisher({"camera": NumberedCamera()})
    session = {}

    async def signal(offer: str) -> str:
        session["id"], answer = await _retrying(lambda: pool.publish(attempt_id, "token:t", offer, ["camera"]))
        return answer

    await publisher.start(signal)
    return publisher, session["id"]


async def _retrying(call):
    """A 503 (the relay is being replaced, or this worker is not connected to it yet) is tried
    again, as the browser does."""
    for _ in range(60):
        try:
            return await call()
        except LiveRequestError as exc:
            if exc.status != 503:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("the relay stayed unavailable")


async def view(pool: RelayPool, attempt_id: int) -> Viewer:
    viewer = Viewer(decode=False)
    await viewer.start(lambda offer: _view_answer(pool, attempt_id, offer))
    return viewer


async def _view_answer(pool: RelayPool, attempt_id: int, offer: str) -> str:
    return (await _retrying(lambda: pool.view(attempt_id, "camera", "user:1", offer)))[1]


def test_two_workers_share_the_relay_processes_and_a_dead_one_is_replaced():
    live = make_live_exam(candidates=2)
    [(attempt_id, _), (other_id, _)] = live.grants
    # A short folder of the session's data folder: a Unix socket's path is short.
    folder = config.data_dir / "live" / f"pool-{os.getpid()}"

    async def scenario():
        first, second = RelayPool(RELAYS, folder, RELAY_COMMAND), RelayPool(RELAYS, folder, RELAY_COMMAND)
        try:
            await asyncio.gather(first.start(), second.start())
            # One process per index between the two workers, whichever started it.
            started = dict(own_relays())
            assert sorted(started) == list(range(RELAYS))

            publisher, session_id = await publish(first, attempt_id)
            viewer = await view(second, attempt_id)
            assert await viewer.wait_frames(10, timeout=30), viewer.count
            for pool in (first, second):
                assert await eventually(lambda pool=pool: pool.snapshot(attempt_id).status == LiveStatus.live,
                                        20), "live in both workers"
                assert pool.snapshot(other_id).status == LiveStatus.offline
            assert await eventually(lambda: second.session_counts() == {"publish": 1, "view": 1}, 20), \
                second.session_counts()

            # Session ids name their relay: any worker finds the session, nothing else is found.
            assert session_id.startswith(f"{attempt_id % RELAYS}.")
            assert await second.session_owner(session_id) == "token:t"
            for unknown in ("", "x", "9.abc", f"{attempt_id % RELAYS}.abc", "1" * 12):
                assert await second.session_owner(unknown) is None
                assert not await second.end(unknown)

            # The attempt's relay dies: its statuses go with it; the workers start another.
            killed = attempt_id % RELAYS
            version = second.version
            os.kill(started[killed], signal.SIGKILL)
            assert await second.wait_for_change(version, 20) != version, "statuses changed"
            assert await eventually(lambda: second.snapshot(attempt_id).status == LiveStatus.offline, 20), \
                "offline with its relay"
            assert await eventually(lambda: dict(own_relays()).keys() == started.keys()
                                    and dict(own_relays())[killed] != started[killed], 60), \
                own_relays()
            # The killed one is gone once reaped: one process per index again.
            assert await eventually(lambda: len(own_relays()) == RELAYS, 20), \
                own_relays()

            # The publisher comes back (as the browser's reconnect loop does), and is live again.
            await publisher.close()
            await viewer.close()
            publisher, _ = await publish(second, attempt_id)
            viewer = await view(first, attempt_id)
            assert await viewer.wait_frames(10, timeout=30), viewer.count
            assert await eventually(lambda: first.snapshot(attempt_id).status == LiveStatus.live, 20), \
                "live again"
            assert await first.close_sessions(["user:1"]) == 1  # a revocation reaches every relay
            await publisher.close()
            await viewer.close()
        finally:
            await first.close()
            await second.close()

    run_async(scenario())
