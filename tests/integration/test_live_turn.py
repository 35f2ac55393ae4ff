"""Live video through a real TURN server (coturn, started by the test): Python publisher and
viewer forced to relay-only ICE, over TURN/UDP and TURN/TCP, with credentials minted from the
shared secret the way the app does. (Chromium through TURN: tests/browser/test_live_turn_browser.py.)
"""

import socket

import psutil
import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from proctor_app.media.live.ice import IceServers, IceSettings
from proctor_app.media.live.relay import LiveRelay
from tests.support.live_clients import NumberedCamera, Publisher, Viewer, eventually, run_async

ATTEMPT = 11


def relay_only(servers: list[dict]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[RTCIceServer(**s) for s in servers],
                            iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def turn_sockets(turn_server) -> set[tuple[str, tuple]]:
    """This process's sockets talking to the TURN server: ("tcp" or "udp", local address)."""
    kinds = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}
    return {(kinds[c.type], tuple(c.laddr)) for c in psutil.Process().net_connections("inet4")
            if c.raddr and tuple(c.raddr) == (turn_server.ip, turn_server.port)}


def through_turn(ice: IceServers, client_ice: IceServers, turn_server, wait_s: float = 15) -> dict:
    """Publish and view through a relay using `ice`, the clients with `client_ice`'s credentials
    and relay-only ICE; returns what happened."""
    async def run():
        relay = LiveRelay(offline_after_s=lambda: 5, on_transition=_ignore, ice=ice)
        publisher = Publisher({"camera": NumberedCamera()},
                              config=relay_only(client_ice.for_client(f"attempt:{ATTEMPT}")))
        viewer = Viewer(config=relay_only(client_ice.for_client("user:1")))
        seen = {}
        before = turn_sockets(turn_server)
        try:
            async def publish_signal(offer):
                seen["offer"] = offer
                return (await relay.publish(ATTEMPT, "token", offer, ["camera"]))[1]

            await publisher.start(publish_signal)
            await viewer.start(lambda offer: _view(relay, offer))
            seen["connected"] = await eventually(lambda: publisher.pc.connectionState == "connected", wait_s)
            seen["frames"] = await viewer.wait_frames(10, wait_s) and viewer.count
            seen["turn_sockets"] = {kind for kind, _ in turn_sockets(turn_server) - before}
        finally:
            await viewer.close()
            await publisher.close()
            await relay.close()
        return seen

    return run_async(run())


async def _view(relay, offer):
    return (await relay.view(ATTEMPT, "camera", "user:1", offer))[1]


async def _ignore(*args):
    pass


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_relay_only_clients_go_live_through_turn_with_minted_credentials(turn_server, transport):
    ice = IceServers(IceSettings((turn_server.url(transport),), turn_server.secret))
    seen = through_turn(ice, ice, turn_server)
    assert candidate_types(seen["offer"]) == {"relay"}
    assert seen["connected"] and seen["frames"] >= 10
    assert seen["turn_sockets"] == {transport}


def test_credentials_from_another_secret_get_no_relay_and_never_connect(turn_server):
    ice = IceServers(IceSettings((turn_server.url("udp"),), turn_server.secret))
    forged = IceServers(IceSettings((turn_server.url("udp"),), "not-the-secret"))
    seen = through_turn(ice, forged, turn_server, wait_s=5)
    assert candidate_types(seen["offer"]) == set()
    assert not seen["connected"] and not seen["frames"]
