"""Signed, expiring media links: they keep storage paths out of URLs, are made for one user, and
make leaked links go stale. URLs name media by attempt and kind only."""

import base64
import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import urlencode

from proctor_app.clock import system_clock
from proctor_app.config import config

LINK_TTL_S = 4 * 3600
LINK_ROUNDING_S = 600
PREFIX = "/api/media/attempts"
# The query parameter naming the API key a link was made for (links for users carry none).
KEY_PARAM = "key"


class LinkError(Exception):
    """A media link that was tampered with, made for someone else, or has expired."""


def _signature(message: str, expires: int) -> str:
    mac = hmac.new(config.secret_key.encode(), f"{expires}\n{message}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def sign_link(message: str, ttl_s: int, now: float | None = None) -> tuple[int, str]:
    """(expires, signature) for `message`: what the link grants, to whom.

    The expiry is rounded up to whole LINK_ROUNDING_S, so a page that refreshes gets the same
    link back: a <video> whose src changed would start loading again.
    """
    expires = _expires(ttl_s, now)
    return expires, _signature(message, expires)


def _expires(ttl_s: int, now: float | None) -> int:
    expires = int((now if now is not None else system_clock.time()) + ttl_s)
    return expires + -expires % LINK_ROUNDING_S


def link_expiry(now: float | None = None) -> datetime:
    """When links made now (key_link, recording_link, ...) expire."""
    return datetime.fromtimestamp(_expires(LINK_TTL_S, now), timezone.utc)


def check_link(message: str, expires: str | None, signature: str | None, now: float | None = None) -> None:
    if not (expires and signature and expires.isascii() and expires.isdigit() and signature.isascii()):
        raise LinkError("This media link is invalid.")
    if not hmac.compare_digest(_signature(message, int(expires)), signature):
        raise LinkError("This media link is invalid.")
    if int(expires) <= (now if now is not None else system_clock.time()):
        raise LinkError("This media link has expired; reload the page for a new one.")


def grant(user_id: int | str, path: str, download: bool) -> str:
    """What a link to `path` grants, and to whom: the signed message."""
    return f"{user_id}\n{path}\n{int(download)}"


def key_principal(key_id: int) -> str:
    """Whom a link made for an API key grants: kept apart from user ids."""
    return f"key:{key_id}"


def _link(user_id: int | str, path: str, download: bool, now: float | None, extra: dict | None = None) -> str:
    expires, signature = sign_link(grant(user_id, path, download), LINK_TTL_S, now)
    query = {"exp": expires, "sig": signature} | ({"download": "1"} if download else {}) | (extra or {})
    return f"{path}?{urlencode(query)}"


def recording_link(user_id: int, attempt_id: int, stream: str, asset: str, download: bool = False,
                   now: float | None = None) -> str:
    """A signed link for `user_id` to one asset ("video", "poster", "sprite", "preview") of a
    recording."""
    return _link(user_id, f"{PREFIX}/{attempt_id}/{stream}/{asset}", download, now)


def key_recording_link(key_id: int, attempt_id: int, stream: str, asset: str, now: float | None = None) -> str:
    """A signed link for an API key to one asset of a recording: valid without a login while the
    key is (the media route checks the key again)."""
    return key_link(key_id, f"{PREFIX}/{attempt_id}/{stream}/{asset}", now)


def key_link(key_id: int, path: str, now: float | None = None) -> str:
    """A signed link for an API key to `path` (a live WHEP endpoint or session, say): valid
    without a login while the key is (the route checks the key again)."""
    return _link(key_principal(key_id), path, False, now, {KEY_PARAM: key_id})


def check_key_link(path: str, key_param: str | None, expires: str | None, signature: str | None) -> int:
    """The API key id a link to `path` was made for (key_link); LinkError when it was not."""
    if not (key_param and key_param.isascii() and key_param.isdigit() and len(key_param) < 19):
        raise LinkError("This media link is invalid.")
    check_link(grant(key_principal(int(key_param)), path, False), expires, signature)
    return int(key_param)


def snapshot_link(user_id: int, attempt_id: int, seq: int, now: float | None = None) -> str:
    return _link(user_id, f"{PREFIX}/{attempt_id}/snapshots/{seq}", False, now)


def evidence_link(user_id: int, attempt_id: int, now: float | None = None) -> str:
    """A signed link for `user_id` to download the attempt's evidence bundle."""
    return _link(user_id, f"{PREFIX}/{attempt_id}/evidence", True, now)
