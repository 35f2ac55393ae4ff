"""Where a sign-in may send the browser next: only paths of this site."""

import re
from urllib.parse import unquote

# Percent-decoding rounds checked: a value encoded more often than this is refused outright.
MAX_DECODES = 4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _hostile(text: str) -> bool:
    # Browsers read "\" as "/" (so "/\evil.com" is "//evil.com") and drop tabs and newlines
    # inside URLs (so "/\t/evil.com" is "//evil.com" too).
    return ("\\" in text or "//" in text or bool(_CONTROL.search(text))
            or bool(_SCHEME.match(text)) or not text.startswith("/"))


def is_same_site_path(target: str | None) -> bool:
    """A path on this site: one leading "/", no backslash, "//", scheme or control character,
    neither as given nor after percent-decoding it (repeatedly)."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return False
    text = target
    for _ in range(MAX_DECODES):
        if _hostile(text):
            return False
        decoded = unquote(text)
        if decoded == text:
            return True
        text = decoded
    return False


def next_or_home(target: str | None, home: str) -> str:
    """`target` if it is a same-site path, else `home`."""
    return target if is_same_site_path(target) else home
