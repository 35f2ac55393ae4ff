"""Who sent a request: the client address behind trusted proxies only, and the same-site check
of sign-in and sign-out."""

import pytest
from starlette.requests import Request

from proctor_app.api.clients import client_address, from_this_site
from proctor_app.cors import cors_allowed_origins


def request(peer: str, headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "client": (peer, 1234),
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


@pytest.mark.parametrize("peer, forwarded, trusted, expected", [
    ("203.0.113.9", "", ("127.0.0.1",), "203.0.113.9"),
    # A client that is not a trusted proxy cannot name another address.
    ("203.0.113.9", "198.51.100.1", ("127.0.0.1",), "203.0.113.9"),
    ("127.0.0.1", "198.51.100.1", ("127.0.0.1",), "198.51.100.1"),
    # What the client wrote left of the proxy's own entry is not believed.
    ("127.0.0.1", "1.2.3.4, 198.51.100.1", ("127.0.0.1",), "198.51.100.1"),
    # A chain of trusted proxies (CIDR) is walked through.
    ("10.0.0.2", "198.51.100.1, 10.0.0.7", ("10.0.0.0/8",), "198.51.100.1"),
    ("127.0.0.1", "2001:db8::1", ("127.0.0.1", "::1"), "2001:db8::1"),
    # A malformed right-most entry: the peer, not anything the client may have put before it.
    ("127.0.0.1", "198.51.100.1, junk", ("127.0.0.1",), "127.0.0.1"),
    ("127.0.0.1", "", ("127.0.0.1",), "127.0.0.1"),
    ("127.0.0.1", "198.51.100.1", (), "127.0.0.1"),
])
def test_client_address(peer, forwarded, trusted, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert client_address(request(peer, headers), trusted) == expected


@pytest.mark.parametrize("public_url, headers, same", [
    ("", {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000"}, True),
    ("", {"Host": "127.0.0.1:8000", "Origin": "http://evil.example"}, False),
    ("", {"Host": "127.0.0.1:8000"}, False),
    ("", {"Host": "127.0.0.1:8000", "Origin": "null"}, False),
    ("https://proctor.example.org",
     {"Host": "proctor.example.org", "Origin": "https://proctor.example.org"}, True),
    ("https://proctor.example.org/", {"Host": "x", "Origin": "https://Proctor.example.org"}, True),
    ("https://proctor.example.org",
     {"Host": "proctor.example.org", "Origin": "http://proctor.example.org"}, False),
    ("https://proctor.example.org", {"Host": "evil.example", "Origin": "https://evil.example"}, False),
])
def test_from_this_site(public_url, headers, same):
    assert from_this_site(request("127.0.0.1", headers), public_url) is same


def test_cors_origins_are_only_the_configured_ones_plus_the_site_itself():
    assert cors_allowed_origins(("",), "https://proctor.example.org") == []
    assert cors_allowed_origins(("https://lms.example.org/", " https://sdk.example.org:8443"),
                                "https://proctor.example.org/x") == [
        "https://lms.example.org", "https://proctor.example.org", "https://sdk.example.org:8443"]
