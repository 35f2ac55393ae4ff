"""ICE configuration of live video: what browsers, outside clients and aiortc are given.
(That coturn accepts the minted credentials: tests/integration/test_live_turn.py.)"""

import pytest
from aioice import Candidate
from aiortc.sdp import SessionDescription

from proctor_app.media.live.ice import IceServers, IceSettings, parse_urls
from tests.support.clock import FakeClock

URLS = ("stun:stun.example.edu:3478", "turn:turn.example.edu:3478?transport=udp",
        "turns:turn.example.edu:5349?transport=tcp")


def test_turn_servers_get_credentials_that_expire_after_the_ttl_and_stun_ones_none():
    clock = FakeClock()
    ice = IceServers(IceSettings(URLS, turn_secret="s3cret", credential_ttl_s=600), clock)
    stun, turn = ice.for_client("user:7")
    assert stun == {"urls": ["stun:stun.example.edu:3478"]}
    assert turn["urls"] == list(URLS[1:])
    assert turn["username"] == f"{int(clock.time()) + 600}:user:7"
    clock.advance(60)
    later = ice.for_client("user:7")[1]
    assert later["username"] != turn["username"] and later["credential"] != turn["credential"]
    assert ice.for_client("user:8")[1]["credential"] != later["credential"]


def test_without_servers_the_browser_gets_host_candidates_only_and_the_policy():
    ice = IceServers(IceSettings(transport_policy="relay"))
    assert ice.rtc_configuration("user:1") == {"iceServers": [], "iceTransportPolicy": "relay"}
    assert ice.for_aiortc() == []
    assert ice.link_headers("user:1") == []


def test_link_headers_name_every_url_with_its_credentials():
    ice = IceServers(IceSettings(URLS, turn_secret="s3cret"), FakeClock())
    links = ice.link_headers("attempt:3")
    assert links[0] == '<stun:stun.example.edu:3478>; rel="ice-server"'
    turn = ice.for_client("attempt:3")[1]
    assert links[1] == (f'<turn:turn.example.edu:3478?transport=udp>; rel="ice-server"; '
                        f'username="{turn["username"]}"; credential="{turn["credential"]}"; '
                        'credential-type="password"')
    assert len(links) == 3


@pytest.mark.parametrize("settings", [
    {"urls": ("http://turn.example.edu",)},
    {"transport_policy": "none"},
    {"public_ip": "proctor.example.edu"},
])
def test_bad_settings_are_refused_at_start(settings):
    with pytest.raises(ValueError):
        IceSettings(**settings)


def test_parse_urls_takes_a_comma_separated_list():
    assert parse_urls(" stun:a:1, ,turn:b:2?transport=tcp ") == ("stun:a:1", "turn:b:2?transport=tcp")


ANSWER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=video 40000 UDP/TLS/RTP/SAVPF 97",
    "c=IN IP4 10.0.0.5",
    "a=candidate:a1 1 udp 2130706431 10.0.0.5 40000 typ host",
    "a=candidate:a2 1 udp 2130706431 fd00::5 40001 typ host",
    "a=candidate:a3 1 udp 1694498815 198.51.100.1 41000 typ srflx raddr 10.0.0.5 rport 40000",
    "a=end-of-candidates", ""])


def test_a_public_ip_adds_a_reflexive_candidate_on_each_ipv4_host_ones_port():
    sdp = IceServers(IceSettings(public_ip="203.0.113.9")).advertise_public_ip(ANSWER)
    candidates = [Candidate.from_sdp(line[2:]) for line in sdp.split("\r\n") if line.startswith("a=candidate:")]
    assert "203.0.113.9" in {c.ip for c in SessionDescription.parse(sdp).media[0].ice_candidates}
    added = [c for c in candidates if c.host == "203.0.113.9"]
    assert len(candidates) == 4 and len(added) == 1
    assert (added[0].type, added[0].port, added[0].related_address, added[0].related_port) == \
        ("srflx", 40000, "10.0.0.5", 40000)
    assert added[0].priority < candidates[0].priority  # hosts on the private network go first


def test_without_a_public_ip_the_answer_is_unchanged():
    assert IceServers(IceSettings()).advertise_public_ip(ANSWER) == ANSWER
