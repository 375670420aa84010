"""Staff passwords: argon2id (argon2-cffi), the current recommendation (OWASP)."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 10
# Generated passwords: no look-alike characters (0/O, 1/l/I), ~94 bits in 17 characters.
ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
GENERATED_LENGTH = 17
# argon2id hashes at once, per process: each takes a core and 64 MiB for ~50 ms.
HASH_SLOTS = 4


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    return _hasher.check_needs_rehash(hashed)


def generate_password(length: int = GENERATED_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class Hasher:
    """Hashing and verifying off the event loop, at most ``slots`` at a time: a burst of
    logins neither stalls the calls served on the same loop nor takes all cores and memory.
    Those beyond the bound wait their turn."""

    def __init__(self, slots: int = HASH_SLOTS) -> None:
        self._slots = asyncio.Semaphore(slots)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(hash_password, password)

    async def verify(self, hashed: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(verify, hashed, password)
