from passlib.context import CryptContext

_context = CryptContext(schemes=["argon2"], deprecated="auto", argon2__type="ID")

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _context.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _context.verify(password, password_hash)
    except ValueError:
        return False
