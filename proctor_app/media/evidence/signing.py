"""The install's Ed25519 signing key: generated once and kept in the data folder beside the secret
key (signing_key.pem, owner-only); its public key is published for verifiers."""

import base64
import functools
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from proctor_app.config import config

KEY_FILE = "signing_key.pem"
ALGORITHM = "Ed25519"


def canonical(document: dict) -> bytes:
    """The bytes that are hashed and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:  # O_EXCL: two processes starting together keep the first key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def fingerprint(public_key: str) -> str:
    """SHA-256 of the raw public key, hex: what a verifier compares with the published one."""
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()


def sign(key: Ed25519PrivateKey, document: dict) -> dict:
    """`document` with a "signature" member: the key that signed and the signature of the rest."""
    return {**document, "signature": {"algorithm": ALGORITHM, "public_key": public_key_text(key),
                                      "value": base64.b64encode(key.sign(canonical(document))).decode()}}


def signature_problem(document: dict, trusted_key: str | None = None) -> str | None:
    """Why the document's signature does not hold (None when it does); with `trusted_key`, it must
    also be that key's."""
    signature = document.get("signature")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return "it is not signed"
    if trusted_key is not None and signature.get("public_key") != trusted_key:
        return "it is signed by another key than this install's"
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"]))
        public.verify(base64.b64decode(signature["value"]), canonical(unsigned))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return "its signature does not match its content"
    return None


@functools.cache
def _key_in(data_dir: Path) -> Ed25519PrivateKey:
    return load_or_create_key(data_dir)


def install_key() -> Ed25519PrivateKey:
    """This install's key, from the data folder (PROCTOR_DATA_DIR)."""
    return _key_in(config.data_dir)
