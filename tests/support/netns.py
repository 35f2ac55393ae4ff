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
def udp_blocked_namespace(subnet: int = 231):
    """A namespace 10.<subnet>.<pid>/30 where every outgoing UDP datagram is dropped."""
    tag = os.getpid() % 250
    name, host_if, inside_if = f"proctor-noudp-{os.getpid()}", f"pnu{os.getpid()}h", f"pnu{os.getpid()}n"
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
        _run(*inside, "nft", "add table inet noudp")
        _run(*inside, "nft", "add chain inet noudp out { type filter hook output priority 0 ; }")
        _run(*inside, "nft", "add rule inet noudp out meta l4proto udp counter drop")
        yield Namespace(name, host_ip, inside_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def dropped_udp_packets(ns: Namespace) -> int:
    """How many UDP datagrams the namespace's rule dropped so far."""
    out = subprocess.run(["ip", "netns", "exec", ns.name, "nft", "list", "table", "inet", "noudp"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split("counter packets ")[1].split()[0])
