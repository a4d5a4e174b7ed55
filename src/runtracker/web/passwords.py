"""Passwords (argon2id) and API keys (random, stored as a SHA-256). No web framework is imported here: the
CLI's `runtracker user` commands use this module alone."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from typing import Any

from ..core.state import STATE

MISSING_EXTRA = "the dashboard needs the web extra, which is not installed: pip install 'runtracker[web]'"
MIN_PASSWORD = 8
API_KEY_PREFIX = "rtk_"


def hasher() -> Any:
    """The process's PasswordHasher (`STATE.password_hasher`): by default argon2-cffi's, with its (RFC 9106
    low-memory) defaults, made at first use; ImportError naming the extra."""
    if STATE.password_hasher is None:
        try:
            from argon2 import PasswordHasher
        except ImportError as exc:
            raise ImportError(MISSING_EXTRA) from exc
        STATE.password_hasher = PasswordHasher()
    return STATE.password_hasher


def set_hasher(value: Any) -> None:
    """Use another PasswordHasher (tests use a cheap one); None: the default again."""
    STATE.password_hasher = value


def hash_password(password: str) -> str:
    return str(hasher().hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches; False for a malformed hash too, never an exception."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def burn_time(password: str) -> None:
    """Take as long as checking a wrong password: what the login does for a user that does not exist."""
    verify_password(_dummy_hash(hasher()), password)


@functools.lru_cache(maxsize=1)
def _dummy_hash(password_hasher: Any) -> str:
    """A memo cache: the hash of a random password, made once per hasher (any such hash serves equally well),
    that an unknown user's password is verified against."""
    return str(password_hasher.hash(secrets.token_urlsafe(16)))


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return f"the password must have at least {MIN_PASSWORD} characters"
    return None


def new_api_key() -> str:
    """A new API key: 256 random bits. Shown once; only its hash is stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """The stored form of an API key. A fast hash is enough: the key is random, not a password."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def fingerprint(secret: str, password_hash: str) -> str:
    """A session's proof of the password it was opened with: changing the password ends every session."""
    return hmac.new(secret.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:20]
