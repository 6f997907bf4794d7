"""Who is calling: a token's or an API key's account and role, resolved through a short
per-process cache, so a request costs no database round trip while a change to an account
(role, active, password) or a revoked key still takes effect within `CACHE_SECONDS` (and the
round trip that reads it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import func, select, update

from ekimo.container import Container
from ekimo.users.models import ApiKey, RevokedToken, User
from ekimo.users.roles import Role

logger = logging.getLogger(__name__)

# A change made in another process is seen within this time (the promise is 5 s).
CACHE_SECONDS = 2.0
REFRESH_AHEAD_SECONDS = 0.5
# Entries kept per cache at most: wrong keys from many addresses must not grow it forever.
MAX_ENTRIES = 10_000
# `last_used_at` of a key is written at most this often, off the request's path.
LAST_USED_EVERY_S = 60.0
KEY_PREFIX = "ekimo_"

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: an account, or an API key acting with its own role."""

    user_id: int
    username: str
    role: Role
    key_id: int | None = None

    @property
    def id(self) -> int:
        """The account's id (what `request.user.id` meant before keys existed)."""
        return self.user_id


@dataclass(frozen=True, slots=True)
class _Account:
    username: str
    role: Role
    active: bool
    token_version: int
    revoked: frozenset[str]  # ids of its tokens logged out and not yet expired


@dataclass(frozen=True, slots=True)
class _Key:
    key_id: int
    user_id: int
    role: Role
    user_token_version: int
    expires_at: datetime | None


def secret_hash(secret: str) -> str:
    """How a key's secret is stored: its SHA-256 (the secret is random, so no salt or bcrypt)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class _Expiring(Generic[K, V]):
    """What `load` gives for each key, for `CACHE_SECONDS` from the start of its load. One load
    at a time per key, however many requests ask meanwhile; an entry asked for in its last
    `REFRESH_AHEAD_SECONDS` is reloaded behind the request, so that a key in use (a client
    under load) never expires: its requests never wait for the round trip."""

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._running: set[asyncio.Task[V]] = set()  # the loop keeps only weak references
        self._generation = 0  # a load begun before `clear` does not fill the cache after it

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
        self._generation += 1

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            expires, value = entry
            now = time.monotonic()
            if now <= expires:
                if now > expires - REFRESH_AHEAD_SECONDS:
                    self._reload(key)
                return value
        # Shielded: a waiter cancelled (its client gone) does not cancel the others' load.
        return await asyncio.shield(self._reload(key))

    def _reload(self, key: K) -> asyncio.Task[V]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._fill(key, self._generation))
            self._loading[key] = task
            self._running.add(task)
            task.add_done_callback(lambda done: self._settle(key, done))
        return task

    async def _fill(self, key: K, generation: int) -> V:
        expires = time.monotonic() + CACHE_SECONDS
        value = await self._load(key)
        if generation == self._generation:
            entries = self._entries
            # Re-inserted last, so the dict's order is the order of expiry: the first is the
            # oldest, and the one to drop when full.
            entries.pop(key, None)
            entries[key] = (expires, value)
            if len(entries) > MAX_ENTRIES:
                del entries[next(iter(entries))]
        return value

    def _settle(self, key: K, task: asyncio.Task[V]) -> None:
        self._running.discard(task)
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled():
            task.exception()  # the waiters got it; retrieved even when none is left


class Principals:
    """Resolves tokens and keys to principals; one per app process."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._accounts = _Expiring[int, _Account | None](self._load_account)
        self._keys = _Expiring[str, _Key | None](self._load_key)
        self._key_used: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def forget(self) -> None:
        """Drop every cached entry (a change made by this process applies at once)."""
        self._accounts.clear()
        self._keys.clear()

    async def for_token(
        self, user_id: int, token_version: int, token_id: str = ""
    ) -> Principal | None:
        """The principal of a valid token, or None when its account is gone, inactive or
        changed since the token was issued, or the token was logged out."""
        account = await self._accounts.get(user_id)
        if account is None or not account.active or account.token_version != token_version:
            return None
        if token_id in account.revoked:
            return None
        return Principal(user_id=user_id, username=account.username, role=account.role)

    async def for_key(self, secret: str) -> Principal | None:
        """The principal of a valid API key, or None (unknown, expired, revoked, or its owner
        inactive or changed since the key was made)."""
        key = await self._keys.get(secret_hash(secret))
        if key is None or (key.expires_at is not None and key.expires_at <= datetime.now(UTC)):
            return None
        account = await self._accounts.get(key.user_id)
        if account is None or not account.active:
            return None
        if account.token_version != key.user_token_version:
            return None
        self._note_use(key.key_id, time.monotonic())
        return Principal(
            user_id=key.user_id, username=account.username, role=key.role, key_id=key.key_id
        )

    async def _load_account(self, user_id: int) -> _Account | None:
        # The account's logged-out tokens in the same round trip (an array, usually empty).
        revoked = (
            select(func.array_agg(RevokedToken.token_id))
            .where(RevokedToken.user_id == User.id, RevokedToken.expires_at > func.now())
            .scalar_subquery()
        )
        statement = select(
            User.username, User.role, User.active, User.token_version, revoked.label("revoked")
        ).where(User.id == user_id)
        async with self._container.engine.connect() as conn:
            row = (await conn.execute(statement)).one_or_none()
        if row is None:
            return None
        return _Account(
            username=row.username,
            role=Role(row.role),
            active=row.active,
            token_version=row.token_version,
            revoked=frozenset(row.revoked or ()),
        )

    async def _load_key(self, digest: str) -> _Key | None:
        statement = select(
            ApiKey.id, ApiKey.user_id, ApiKey.role, ApiKey.user_token_version, ApiKey.expires_at
        ).where(ApiKey.secret_hash == digest)
        async with self._container.engine.connect() as conn:
            row = (await conn.execute(statement)).one_or_none()
        if row is None:
            return None
        return _Key(
            key_id=row.id,
            user_id=row.user_id,
            role=Role(row.role),
            user_token_version=row.user_token_version,
            expires_at=row.expires_at,
        )

    def _note_use(self, key_id: int, now: float) -> None:
        if now - self._key_used.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._key_used[key_id] = now
        task = asyncio.create_task(self._write_last_used(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_last_used(self, key_id: int) -> None:
        try:
            async with self._container.engine.begin() as conn:
                await conn.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=datetime.now(UTC))
                )
        except Exception:
            # Bookkeeping only: a failed write never fails the request that used the key.
            logger.warning("could not record the use of API key %s", key_id, exc_info=True)
