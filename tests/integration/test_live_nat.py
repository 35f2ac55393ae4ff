"""The relay behind a 1:1 NAT: a publisher in a network namespace reaches the relay's host only
through a public address that NATs to its private one (nftables DNAT; the private address itself
is dropped). With PROCTOR_PUBLIC_IP set it goes live; without, it cannot connect."""

import asyncio
import json
import sys

import pytest

from proctor_app.media.live.ice import IceServers, IceSettings
from proctor_app.media.live.relay import LiveRelay
from proctor_app.media.live.status import LiveStatus
from tests.support.live_clients import eventually, run_async
from tests.support.netns import can_make_namespaces, namespace_behind_nat, private_ip
from tests.support.server import ROOT

PUBLIC_IP = "198.51.100.7"  # TEST-NET-2: nothing answers there but our NAT
ATTEMPT = 21


@pytest.fixture(scope="module")
def behind_nat():
    reason = can_make_namespaces()
    if reason:
        pytest.skip(reason)
    with namespace_behind_nat(PUBLIC_IP, private_ip()) as ns:
        yield ns


def publish_from(ns, public_ip: str) -> tuple[str, LiveStatus]:
    """What the publisher in `ns` reports, and the attempt's status on a relay that advertises
    `public_ip`."""
    async def run():
        relay = LiveRelay(offline_after_s=lambda: 5, on_transition=_ignore,
                          ice=IceServers(IceSettings(public_ip=public_ip)))
        child = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns.name, sys.executable, "-m", "tests.support.nat_publisher",
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        try:
            offer = json.loads(await asyncio.wait_for(child.stdout.readline(), 30))
            _, answer = await relay.publish(ATTEMPT, "token", offer, ["camera"])
            child.stdin.write((json.dumps(answer) + "\n").encode())
            await child.stdin.drain()
            reported = (await asyncio.wait_for(child.stdout.readline(), 40)).decode().strip()
            await eventually(lambda: relay.snapshot(ATTEMPT).status == LiveStatus.live, 5)
            return reported, relay.snapshot(ATTEMPT).status
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
            await relay.close()

    return run_async(run())


async def _ignore(*args):
    pass


def test_with_the_public_ip_a_publisher_outside_the_nat_goes_live(behind_nat):
    assert publish_from(behind_nat, PUBLIC_IP) == ("connected", LiveStatus.live)


def test_without_it_the_relays_private_addresses_are_unreachable(behind_nat):
    reported, status = publish_from(behind_nat, "")
    assert reported == "failed" and status != LiveStatus.live
