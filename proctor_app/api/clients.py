"""Who sent an HTTP request: the client's address (through the trusted reverse proxy), and whether
the request comes from this site's own pages."""

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from proctor_app.cors import origin_of


@lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted_proxies)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(request: HTTPConnection, trusted_proxies: tuple[str, ...]) -> str:
    """The peer's address, or, when the peer is one of `trusted_proxies` (IPs or CIDRs), the
    right-most X-Forwarded-For entry that is not a trusted proxy: each proxy appends the address
    it saw, so entries left of that one are the client's to forge."""
    peer = request.client.host if request.client else ""
    networks = _networks(trusted_proxies)

    def trusted(address) -> bool:
        return address is not None and any(address in network for network in networks)

    if not trusted(_ip(peer)):
        return peer
    hops = [_ip(hop) for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop is None:  # a malformed entry: nothing left of it can be believed
            break
        if not trusted(hop):
            return str(hop)
    return peer


def from_this_site(request: HTTPConnection, public_url: str) -> bool:
    """The request comes from a page of this site (browsers send Origin with every POST):
    Origin is PROCTOR_PUBLIC_URL's origin, or without one, the host the request was sent to."""
    origin = request.headers.get("origin", "")
    if not origin or origin == "null":
        return False
    if public_url:
        return origin.lower() == origin_of(public_url)
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
