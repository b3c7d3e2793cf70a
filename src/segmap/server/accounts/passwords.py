"""Password hashing with argon2id (argon2-cffi), and the constant-time miss."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs the same time as a
# wrong password and does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("segmap-no-such-user")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(stored_hash)


def dummy_verify(password: str) -> None:
    """Spend the time of one verification (for unknown usernames)."""
    verify_password(_DUMMY_HASH, password)
