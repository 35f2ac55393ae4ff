"""Live video with several app workers (GRANIAN_WORKERS=2) and two relay processes: whichever
worker takes a publisher's or a viewer's request, both meet in their attempt's relay process; a
relay process killed is replaced, and its publishers are back live once they publish again (as the
browsers' reconnect loop does). aiortc clients over HTTP, new connections for every request so
both workers take some."""

import asyncio

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_clients import EncodedSource, Publisher, Viewer, encode_clip, eventually, run_async
from tests.support.live_exams import LiveExam, make_live_exam, publish_url, signed_in
from tests.support.polling import wait_for
from tests.support.server import AppServer, free_port, relay_processes

PUBLISHERS = 10
RELAYS = 2
FPS = 15


@pytest.fixture(scope="module")
def two_workers(demo_db, tmp_path_factory):
    """The app with two workers and two relay processes, on the test session's database."""
    server = AppServer(free_port(), tmp_path_factory.mktemp("two-workers"), extra_env={
        "PROCTOR_DEMO": "1", "GRANIAN_WORKERS": "2", "PROCTOR_LIVE_RELAY_PROCESSES": str(RELAYS)})
    try:
        server.start(timeout=600)
    except Exception:
        print(server.log_path.read_text()[-5000:])
        raise
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tile_clip() -> list[bytes]:
    return encode_clip(320, 240, FPS, seconds=2, bitrate_k=150)


def live_sessions(server: AppServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return {sample.labels["role"]: sample.value for family in text_string_to_metric_families(text)
            if family.name == "proctor_live_sessions" for sample in family.samples}


async def post(server: AppServer, url: str, headers: dict, offer: str) -> httpx.Response:
    # A client of its own: a new connection, which either worker may take.
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        return await client.post(url, content=offer, headers={"Content-Type": "application/sdp", **headers})


async def publish(server: AppServer, attempt_id: int, token: str, clip: list[bytes],
                  retry_for: float = 0) -> tuple[Publisher, str]:
    """A publisher of `attempt_id`; with `retry_for`, 503s are retried that long (as the browser's
    reconnect loop does while a relay process is being replaced)."""
    publisher = Publisher({"camera": EncodedSource(clip, FPS)})
    location = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for

    async def signal(offer: str) -> str:
        while True:
            response = await post(server, f"{publish_url(attempt_id)}?streams=camera",
                                  {"Authorization": f"Bearer {token}"}, offer)
            if response.status_code != 503 or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert response.status_code == 201, response.text
        location["url"] = response.headers["location"]
        return response.text

    await publisher.start(signal)
    return publisher, location["url"]


async def view(server: AppServer, attempt_id: int, proctor: dict) -> Viewer:
    viewer = Viewer(decode=False)

    async def signal(offer: str) -> str:
        response = await post(server, f"/api/live/attempts/{attempt_id}/streams/camera/view", proctor, offer)
        assert response.status_code == 201, response.text
        return response.text

    await viewer.start(signal)
    return viewer


def start_live(server: AppServer, live: LiveExam, clip: list[bytes]):
    proctor = signed_in(live.proctors[0])

    async def scenario():
        publishers = await asyncio.gather(*(publish(server, a, t, clip) for a, t in live.grants))
        viewers = await asyncio.gather(*(view(server, a, proctor) for a, _ in live.grants))
        return publishers, viewers, proctor

    return scenario


def test_ten_publishers_and_their_viewers_all_see_frames_through_two_workers(two_workers, tile_clip):
    live = make_live_exam(candidates=PUBLISHERS)
    # One per index, not one per worker.
    assert wait_for(lambda: [i for i, _ in relay_processes(two_workers.proc.pid)] == list(range(RELAYS)), 60)

    async def scenario():
        publishers, viewers, _ = await start_live(two_workers, live, tile_clip)()
        counts = [viewer.count for viewer in viewers]
        # Every viewer receives its own attempt's stream, steadily.
        assert await eventually(lambda: all(v.count >= c + 3 * FPS for v, c in zip(viewers, counts)), 60), \
            [v.count - c for v, c in zip(viewers, counts)]
        # Whichever worker answers, it counts the sessions of both relay processes.
        for _ in range(4):
            assert await asyncio.to_thread(live_sessions, two_workers) == {"publish": PUBLISHERS,
                                                                         "view": PUBLISHERS}
        # A DELETE reaches the session's relay through either worker.
        _, location = publishers[0]
        async with httpx.AsyncClient(base_url=two_workers.url, timeout=60) as client:
            headers = {"Authorization": f"Bearer {live.grants[0][1]}"}
            assert (await client.delete(location, headers=headers)).status_code == 200
            assert (await client.delete(location, headers=headers)).status_code == 404
        for peer in [p for p, _ in publishers] + viewers:
            await peer.close()

    run_async(scenario())


def test_a_killed_relay_process_is_replaced_and_its_publishers_come_back(two_workers, tile_clip):
    live = make_live_exam(candidates=4)
    before = dict(wait_for(lambda: len(found := relay_processes(two_workers.proc.pid)) == RELAYS and found, 60))

    async def scenario():
        publishers, viewers, proctor = await start_live(two_workers, live, tile_clip)()
        assert await eventually(lambda: all(v.count >= 2 * FPS for v in viewers), 60)
        killed = live.attempt_id % RELAYS
        psutil.Process(before[killed]).kill()
        assert await eventually(lambda: any(i == killed and pid != before[killed]
                                            for i, pid in relay_processes(two_workers.proc.pid)), 60)

        # The other relay's viewers went on receiving.
        spared = [i for i, (a, _) in enumerate(live.grants) if a % RELAYS != killed]
        counts = {i: viewers[i].count for i in spared}
        assert await eventually(lambda: all(viewers[i].count >= counts[i] + FPS for i in spared), 30)

        # The killed relay's publishers and viewers connect again and see frames.
        lost = [(a, t) for a, t in live.grants if a % RELAYS == killed]
        republished = [await publish(two_workers, a, t, tile_clip, retry_for=60) for a, t in lost]
        new_viewers = [await view(two_workers, a, proctor) for a, _ in lost]
        assert await eventually(lambda: all(v.count >= 2 * FPS for v in new_viewers), 60)
        assert await asyncio.to_thread(wait_for, lambda: live_sessions(two_workers) == {
            "publish": len(live.grants), "view": len(live.grants)}, 30)
        for peer in [p for p, _ in publishers + republished] + viewers + new_viewers:
            await peer.close()

    run_async(scenario())
