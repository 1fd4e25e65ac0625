"""Namespace keys at rest: salted SHA-256 digests, never the keys themselves.

A key is 64 random letters and digits (about 381 bits), so one salted SHA-256 is
enough: nobody can guess such a key from its digest, and a slow hash (PBKDF2,
scrypt) would only cost time on every request. The salt, per subject, keeps
two equal keys from having equal digests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: Prefix of a stored digest: ``sha256$<salt hex>$<digest hex>``.
SCHEME = "sha256"


def hash_key(key: str, salt: str | None = None) -> str:
    """The stored form of ``key``: ``sha256$salt$hexdigest`` with a fresh (or given) salt."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()
    return f"{SCHEME}${salt}${digest}"


def is_hashed(stored: str) -> bool:
    """Whether ``stored`` is a digest written by :func:`hash_key` (not an old plain key)."""
    return stored.startswith(f"{SCHEME}$") and stored.count("$") == 2


def verify_key(stored: str, key: str) -> bool:
    """Whether ``key`` matches the stored digest, compared in constant time."""
    if not is_hashed(stored):
        return False
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(hash_key(key, salt).encode(), stored.encode())
