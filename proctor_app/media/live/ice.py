"""ICE servers for live video: STUN/TURN URLs, short-lived TURN credentials, and the server's
public address where the host only sees a private one.

TURN credentials follow the TURN REST scheme that coturn checks with `use-auth-secret`: username
`<expiry epoch seconds>:<who>`, credential base64(HMAC-SHA1(shared secret, username)). Nobody
holds a lasting TURN password: each page, each WHIP/WHEP answer and each server-side peer
connection gets its own, valid for `credential_ttl_s`.
"""

import base64
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import quote

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCIceServer

from proctor_app.clock import Clock, system_clock

TRANSPORT_POLICIES = ("all", "relay")
# What the TURN REST draft (draft-uberti-behave-turn-rest) suggests: one day. coturn checks the
# expiry when an allocation is made, so a page open longer reconnects with stale credentials.
DEFAULT_CREDENTIAL_TTL_S = 86400


@dataclass(frozen=True)
class IceSettings:
    urls: tuple[str, ...] = ()  # stun:, turn:, turns: URLs
    turn_secret: str = ""
    public_ip: str = ""
    transport_policy: str = "all"  # for browsers: "relay" sends everything through TURN
    credential_ttl_s: int = DEFAULT_CREDENTIAL_TTL_S

    def __post_init__(self):
        for url in self.urls:
            if url.split(":", 1)[0] not in ("stun", "stuns", "turn", "turns"):
                raise ValueError(f"not a STUN or TURN URL: {url}")
        if self.transport_policy not in TRANSPORT_POLICIES:
            raise ValueError(f"the ICE transport policy must be one of {', '.join(TRANSPORT_POLICIES)}")
        if self.public_ip:
            ipaddress.IPv4Address(self.public_ip)


def parse_urls(raw: str) -> tuple[str, ...]:
    return tuple(url.strip() for url in raw.split(",") if url.strip())


def turn_rest_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class IceServers:
    def __init__(self, settings: IceSettings = IceSettings(), clock: Clock = system_clock):
        self.settings = settings
        self.clock = clock

    def for_client(self, who: str) -> list[dict]:
        """RTCConfiguration.iceServers for a browser (or any client), TURN credentials minted for
        `who` (e.g. "user:12" or "attempt:7")."""
        stun = [url for url in self.settings.urls if url.startswith("stun")]
        turn = [url for url in self.settings.urls if url.startswith("turn")]
        servers = [{"urls": stun}] if stun else []
        if turn:
            server: dict = {"urls": turn}
            if self.settings.turn_secret:
                username = f"{int(self.clock.time()) + self.settings.credential_ttl_s}:{who}"
                server |= {"username": username,
                           "credential": turn_rest_credential(self.settings.turn_secret, username)}
            servers.append(server)
        return servers

    def rtc_configuration(self, who: str) -> dict:
        """What a browser page passes to `new RTCPeerConnection(...)`."""
        return {"iceServers": self.for_client(who), "iceTransportPolicy": self.settings.transport_policy}

    def for_aiortc(self) -> list[RTCIceServer]:
        """The server's own: aiortc gathers a reflexive and a relayed candidate with them (it
        uses the first STUN and the first TURN URL it can)."""
        return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                for s in self.for_client("relay")]

    def link_headers(self, who: str) -> list[str]:
        """RFC 9725 section 4.4: one `Link: <url>; rel="ice-server"` per URL, for WHIP/WHEP clients
        that are not our pages (OBS, players)."""
        links = []
        for server in self.for_client(who):
            extra = ""
            if "username" in server:
                extra = (f'; username="{server["username"]}"; credential="{server["credential"]}"'
                         '; credential-type="password"')
            links += [f'<{quote(url, safe=":/?=&@.[]-_")}>; rel="ice-server"{extra}' for url in server["urls"]]
        return links

    def advertise_public_ip(self, sdp: str) -> str:
        """Behind a 1:1 NAT (cloud elastic IP, container bridge) the host's addresses are private:
        add, beside each IPv4 host candidate, the reflexive candidate a STUN server would report,
        the public address with the same port. Clients on the private network keep the host one."""
        public_ip = self.settings.public_ip
        if not public_ip:
            return sdp
        lines = []
        for line in sdp.split("\r\n"):
            lines.append(line)
            if not line.startswith("a=candidate:"):
                continue
            host = Candidate.from_sdp(line[len("a="):])
            if host.type != "host" or ":" in host.host or host.host == public_ip:
                continue
            reflexive = Candidate(
                foundation=candidate_foundation("srflx", host.transport, public_ip),
                component=host.component, transport=host.transport,
                priority=candidate_priority(host.component, "srflx"),
                host=public_ip, port=host.port, type="srflx",
                related_address=host.host, related_port=host.port, tcptype=host.tcptype)
            lines.append("a=candidate:" + reflexive.to_sdp())
        return "\r\n".join(lines)
