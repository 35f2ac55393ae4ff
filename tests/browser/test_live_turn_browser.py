"""Live video on networks made by the test: the app restarted with coturn (started here, TURN REST
secret) and relay-only ICE for browsers (PROCTOR_ICE_TRANSPORT_POLICY=relay).
- A candidate's exam page goes live over TURN/UDP; the proctor's grid plays it, also through TURN.
- A candidate's Chromium in a network namespace whose outgoing UDP nftables drops goes live over
  TURN/TCP.
- An outside WHIP client finds TURN servers and credentials in the 201 answer's Link headers, and
  coturn accepts them.
Both checked in getStats: the selected candidate pair's local candidate is a relay one.
"""

import re
import time

import httpx
import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from playwright.sync_api import expect

from tests.support.live_clients import NumberedCamera, Publisher, eventually, run_async

from tests.support.live_exams import candidate_attempt_id, make_live_exam
from tests.support.live_pages import (
    FRAMES_DECODED,
    SELECTED_PAIRS,
    context_maker,
    open_grid,
    status_of,
    take_exam_until_started,
    tile_video_playing,
)
from tests.support.netns import can_make_namespaces, dropped_udp_packets, udp_blocked_namespace
from tests.support.pages import CHROMIUM
from tests.support.turn import TurnServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def no_udp_network():
    reason = can_make_namespaces()
    if reason:
        pytest.skip(reason)
    with udp_blocked_namespace() as ns:
        yield ns


@pytest.fixture(scope="module")
def turn_app(app_server, no_udp_network, tmp_path_factory):
    """The session's app, restarted with coturn (reachable from the namespace too) and relay-only
    ICE; restarted as it was afterwards."""
    turn = TurnServer(tmp_path_factory.mktemp("turn-browser"), ip=no_udp_network.host_ip)
    turn.start()
    saved = dict(app_server.extra_env)
    app_server.extra_env.update({
        "PROCTOR_ICE_SERVERS": f"{turn.url('udp')},{turn.url('tcp')}",
        "PROCTOR_TURN_SECRET": turn.secret, "PROCTOR_ICE_TRANSPORT_POLICY": "relay"})
    try:
        app_server.restart()
        yield app_server
    finally:
        app_server.extra_env = saved
        app_server.restart()
        turn.stop()


@pytest.fixture
def new_context(browser, turn_app):
    with context_maker(browser, turn_app.url, 20000) as make:
        yield make


@pytest.fixture
def browser_without_udp(browser, no_udp_network, turn_app, fake_camera_y4m, tmp_path):
    """A second Chromium, run inside the namespace that drops UDP. It reaches the app at an
    address of its own, which the camera needs treated as a secure origin (as https would be)."""
    wrapper = no_udp_network.wrapper(CHROMIUM, tmp_path)
    inside = browser.browser_type.launch(executable_path=str(wrapper), args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={fake_camera_y4m}",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        f"--unsafely-treat-insecure-origin-as-secure={app_url_inside(no_udp_network, turn_app)}",
    ])
    yield inside
    inside.close()


def app_url_inside(ns, app) -> str:
    return f"http://{ns.host_ip}:{app.port}"


def selected_pairs(page, count: int = 1) -> list[dict]:
    page.wait_for_function(f"window.__pcs.filter(({{ pc }}) => pc.connectionState === 'connected').length >= {count}")
    return page.evaluate(SELECTED_PAIRS)


def proctor_sees_frames(new_context, live, attempt_id: int):
    proctor = open_grid(new_context, live.proctors[0])
    expect(status_of(proctor, attempt_id)).to_have_attribute("data-status", "live")
    tile_video_playing(proctor, attempt_id)
    decoded = proctor.evaluate(FRAMES_DECODED)
    time.sleep(1.5)
    assert proctor.evaluate(FRAMES_DECODED) > decoded > 0
    return proctor


def test_relay_only_chromium_goes_live_over_turn_udp_and_the_proctor_watches_through_turn(new_context):
    live = make_live_exam(start=False)
    candidate = new_context(track_connections=True).new_page()
    take_exam_until_started(candidate, live)
    expect(candidate.locator("#live-status")).to_have_attribute("data-status", "on")
    pairs = selected_pairs(candidate)
    assert pairs and all(p["local"] == "relay" and p["relayProtocol"] == "udp" for p in pairs), pairs
    proctor = proctor_sees_frames(new_context, live, candidate_attempt_id(live))
    viewer_pairs = selected_pairs(proctor)
    assert viewer_pairs and all(p["local"] == "relay" for p in viewer_pairs), viewer_pairs


def test_a_candidate_whose_udp_is_dropped_goes_live_over_turn_tcp(new_context, browser_without_udp,
                                                                  no_udp_network, turn_app):
    live = make_live_exam(start=False)
    candidate = new_context(track_connections=True, on=browser_without_udp,
                            base_url=app_url_inside(no_udp_network, turn_app)).new_page()
    take_exam_until_started(candidate, live)
    expect(candidate.locator("#live-status")).to_have_attribute("data-status", "on")
    pairs = selected_pairs(candidate)
    assert pairs and all(p["local"] == "relay" and p["relayProtocol"] == "tcp" for p in pairs), pairs
    assert dropped_udp_packets(no_udp_network) > 0  # it did try UDP
    proctor_sees_frames(new_context, live, candidate_attempt_id(live))


LINK = re.compile(r'<([^>]+)>; rel="ice-server"'
                  r'(?:; username="([^"]*)"; credential="([^"]*)"; credential-type="password")?')


def test_whip_answers_carry_turn_servers_with_credentials_coturn_accepts(turn_app):
    live = make_live_exam()

    async def scenario():
        async with httpx.AsyncClient(base_url=turn_app.url) as client:
            answers = []

            async def signal(offer: str) -> str:
                response = await client.post(f"{live.publish_url}?streams=camera", content=offer, headers={
                    "Authorization": f"Bearer {live.token}", "Content-Type": "application/sdp"})
                assert response.status_code == 201, response.text
                answers.append((offer, response.headers.get_list("link")))
                return response.text

            first = Publisher({"camera": NumberedCamera()})
            await first.start(signal)
            links = [LINK.fullmatch(link).groups() for link in answers[0][1]]
            # A client of its own (OBS, say) takes them for its next connection: relay only.
            second = Publisher({"camera": NumberedCamera()}, config=RTCConfiguration(
                iceServers=[RTCIceServer(url, username, credential) for url, username, credential in links],
                iceTransportPolicy=RTCIceTransportPolicy.RELAY))
            await second.start(signal)
            connected = await eventually(lambda: second.pc.connectionState == "connected", 15)
            for peer in (second, first):
                await peer.close()
            return links, answers[1][0], connected

    links, relayed_offer, connected = run_async(scenario())
    assert {url.split("?")[1] for url, *_ in links} == {"transport=udp", "transport=tcp"}
    assert all(username.endswith(f":attempt:{live.attempt_id}") and credential for _, username, credential in links)
    assert " typ relay" in relayed_offer and " typ host" not in relayed_offer
    assert connected
