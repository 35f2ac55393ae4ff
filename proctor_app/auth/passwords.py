import secrets

from passlib.context import CryptContext

_context = CryptContext(schemes=["argon2"], deprecated="auto", argon2__type="ID")

MIN_PASSWORD_LENGTH = 8
# Longer passwords are refused before hashing: argon2 work should not be the caller's to choose.
MAX_PASSWORD_LENGTH = 1024


def hash_password(password: str) -> str:
    return _context.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _context.verify(password, password_hash)
    except ValueError:
        return False


# Made at import, not at the first unknown email (whose answer would then take longer).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(32))


def verify_password_or_dummy(password: str, password_hash: str | None) -> bool:
    """verify_password, or without a hash (an unknown account) the same work against a dummy
    hash, answering False: the time taken tells nothing about which accounts exist."""
    if password_hash is None:
        verify_password(password, _DUMMY_HASH)
        return False
    return verify_password(password, password_hash)
