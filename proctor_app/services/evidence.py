"""Tamper evidence for the pages: the install's public signing key, and who gets a link to an
attempt's evidence bundle."""

from proctor_app.auth.roles import EVIDENCE
from proctor_app.auth.sessions import CurrentUser
from proctor_app.media.evidence.signing import fingerprint, install_key, public_key_text
from proctor_app.media.playback.links import evidence_link


def signing_key() -> tuple[str, str]:
    """(public key, base64; its SHA-256 fingerprint, hex)."""
    public_key = public_key_text(install_key())
    return public_key, fingerprint(public_key)


def bundle_link(user: CurrentUser, attempt_id: int, has_media: bool) -> str:
    """The signed download link of the attempt's evidence bundle for supervisors and admins, when
    it has processed media; "" otherwise."""
    return evidence_link(user.id, attempt_id) if has_media and user.role in EVIDENCE else ""
