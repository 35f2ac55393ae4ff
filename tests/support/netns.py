"""A network the tests make: a Linux network namespace joined to this host by a veth pair, whose
outgoing UDP nftables drops (a campus or corporate network that lets only TCP out). Needs root,
`ip` (iproute2) and `nft` (nftables)."""

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Namespace:
    name: str
    host_ip: str  # this host's end of the veth pair, as seen from inside
    inside_ip: str

    def wrapper(self, program: str, folder: Path) -> Path:
        """An executable that runs `program` with its arguments inside the namespace."""
        path = folder / f"{self.name}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {program} "$@"\n')
        path.chmod(0o755)
        return path


def can_make_namespaces() -> str | None:
    """None when this machine can make them; otherwise why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "nft") if not shutil.which(tool)]
    return f"missing {', '.join(missing)}" if missing else None


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextmanager
def _namespace(kind: str, subnet: int, nft_commands: list[str]):
    """A namespace 10.<subnet>.<pid>/30 routed through this host, with `nft_commands` applied
    inside."""
    tag = os.getpid() % 250
    name, host_if, inside_if = f"proctor-{kind}-{os.getpid()}", f"p{kind[:2]}{os.getpid()}h", \
        f"p{kind[:2]}{os.getpid()}n"
    host_ip, inside_ip = f"10.{subnet}.{tag}.1", f"10.{subnet}.{tag}.2"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", inside_if)
        _run("ip", "link", "set", inside_if, "netns", name)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        inside = ["ip", "netns", "exec", name]
        _run(*inside, "ip", "addr", "add", f"{inside_ip}/30", "dev", inside_if)
        _run(*inside, "ip", "link", "set", inside_if, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", host_ip)
        for command in nft_commands:
            _run(*inside, "nft", command)
        yield Namespace(name, host_ip, inside_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@contextmanager
def udp_blocked_namespace():
    """A namespace where every outgoing UDP datagram is dropped."""
    with _namespace("noudp", 231, [
        "add table inet noudp",
        "add chain inet noudp out { type filter hook output priority 0 ; }",
        "add rule inet noudp out meta l4proto udp counter drop",
    ]) as ns:
        yield ns


@contextmanager
def namespace_behind_nat(public_ip: str, private_ip: str):
    """A namespace from which this host's `private_ip` is reachable over UDP only as `public_ip`,
    the way a client outside reaches a server behind a 1:1 NAT (cloud elastic IP)."""
    with _namespace("nat", 232, [
        "add table ip nat",
        "add chain ip nat out { type nat hook output priority -100 ; }",
        f"add rule ip nat out ip daddr {public_ip} dnat to {private_ip}",
        "add table inet onlynat",
        "add chain inet onlynat out { type filter hook output priority 0 ; }",
        # Through the NAT (or replies within it) only: straight to the private address is dropped.
        "add rule inet onlynat out meta l4proto udp ct status dnat accept",
        "add rule inet onlynat out meta l4proto udp counter drop",
    ]) as ns:
        yield ns


def private_ip() -> str:
    """This host's address on its default route (what aiortc offers as its host candidate)."""
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.254"], check=True, capture_output=True,
                         text=True).stdout
    return out.split(" src ")[1].split()[0]


def dropped_udp_packets(ns: Namespace) -> int:
    """How many UDP datagrams the namespace's rule dropped so far."""
    out = subprocess.run(["ip", "netns", "exec", ns.name, "nft", "list", "table", "inet", "noudp"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split("counter packets ")[1].split()[0])
