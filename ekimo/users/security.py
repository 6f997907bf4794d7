"""Password hashing (bcrypt, off the event loop) and access tokens (JWT, HS256 only)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt

from ekimo.users.schemas import MAX_PASSWORD_BYTES

# bcrypt's work factor (2**12 rounds): slow enough to make guessing passwords expensive.
BCRYPT_ROUNDS = 12

JWT_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "jti")
# ekimo's are 22 characters; the column holds up to this many.
MAX_TOKEN_ID = 64

# A bcrypt hash (same cost) of a random password nobody knows: checking a login for an unknown
# user against it costs the same time as checking a real user's password.
_DUMMY_HASH = b"$2b$12$Zlvk3sjtqHfI7P6eiYgx5.7piIdYC7OHIHP2PyxBkA0tLBdLoJPnS"
_DUMMY_PASSWORD = b"not the password"


def _hash(password: bytes) -> str:
    return bcrypt.hashpw(password, bcrypt.gensalt(BCRYPT_ROUNDS)).decode("ascii")


async def hash_password(password: str) -> str:
    """bcrypt hash of a password already checked to be at most 72 bytes."""
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ValueError("password longer than 72 bytes")
    return await asyncio.to_thread(_hash, encoded)


def _check(password: bytes, password_hash: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, password_hash)
    except ValueError:
        return False


async def verify_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches; with no hash (unknown user) checks a dummy, same cost."""
    encoded = password.encode("utf-8")
    if password_hash is None or len(encoded) > MAX_PASSWORD_BYTES:
        # No account, or a password no account can have: spend the same time, then refuse.
        await asyncio.to_thread(_check, _DUMMY_PASSWORD, _DUMMY_HASH)
        return False
    return await asyncio.to_thread(_check, encoded, password_hash.encode("ascii"))


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int  # seconds


class InvalidTokenError(Exception):
    """The token is malformed, not HS256, badly signed, expired or lacks a claim."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    # The account's token_version when the token was issued (absent in a token: 0).
    version: int
    # Its `exp`, in seconds since the epoch.
    expires_at: float = 0.0
    # Its `jti`: what a log-out revokes.
    token_id: str = ""


def create_access_token(
    user_id: int, version: int, secret: str, lifetime: timedelta
) -> AccessToken:
    now = datetime.now(UTC).replace(microsecond=0)
    claims = {
        "sub": str(user_id),
        "ver": version,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    token = jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)  # pyright: ignore[reportUnknownMemberType]
    return AccessToken(token=token, expires_in=int(lifetime.total_seconds()))


def decode_access_token(token: str, secret: str) -> TokenClaims:
    """The claims of a valid token; raises `InvalidTokenError` otherwise."""
    try:
        claims = jwt.decode(  # pyright: ignore[reportUnknownMemberType]
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS)},
        )
        subject = claims["sub"]
        # A bigint id: ASCII digits only, and short enough not to overflow the column.
        if not isinstance(subject, str) or not (subject.isascii() and subject.isdigit()):
            raise InvalidTokenError("subject is not a user id")
        if len(subject) > 18:
            raise InvalidTokenError("subject is not a user id")
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidTokenError("ver is not a token version")
        expires_at = claims["exp"]
        if not isinstance(expires_at, int | float):
            raise InvalidTokenError("exp is not a time")
        token_id = claims["jti"]
        if not isinstance(token_id, str) or not 1 <= len(token_id) <= MAX_TOKEN_ID:
            raise InvalidTokenError("jti is not a token id")
        return TokenClaims(
            user_id=int(subject),
            version=version,
            expires_at=float(expires_at),
            token_id=token_id,
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidTokenError(str(exc)) from None
