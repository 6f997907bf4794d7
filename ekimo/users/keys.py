"""API keys: credentials for machines, each with a role of its own, at most its owner's.

`ApiKeyService` is an Advanced Alchemy repository service on `ApiKey`, shared by the API
(injected per request) and the CLI (made on the command's session). The secret is returned
once, by `create_key`; only its SHA-256 is stored, so a database dump reveals no usable key.
`issue_key` and `revoke_key` are a signed-in account's acts as the API and the console make
them: done, the principal cache dropped where needed, audited.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement, select

from ekimo.bounds import STORABLE_TEXT_RULE, is_storable
from ekimo.container import Container
from ekimo.errors import NotFound, Problem
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.models import ApiKey, User
from ekimo.users.principals import KEY_PREFIX, Principal, Principals, secret_hash
from ekimo.users.roles import Role, may_grant
from ekimo.users.rules import InvalidInputError
from ekimo.users.schemas import ApiKeyOut

logger = logging.getLogger(__name__)

# 32 random bytes (256 bits): guessing is hopeless, so a fast hash (SHA-256) suffices.
SECRET_BYTES = 32
# Listings show this much of the secret: "ekimo_" and 6 random characters, enough to tell a
# user's keys apart and far too little to help guess one.
PREFIX_CHARS = 12
MAX_NAME_CHARS = 100


class RoleNotGrantable(Problem):
    """403: the key would have more power than the account it belongs to."""

    status = 403


class OwnerInactive(Problem):
    """An inactive (or vanished) account cannot own a new key: it would be refused anyway."""

    status = 403


def new_secret() -> str:
    """A fresh key secret: `ekimo_` and 32 random bytes, URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def check_expiry(expires_at: datetime | None, now: datetime | None = None) -> datetime | None:
    """`expires_at` as an aware UTC instant (naive means UTC); 422 unless it is in the future."""
    if expires_at is None:
        return None
    moment = expires_at if expires_at.tzinfo is not None else expires_at.replace(tzinfo=UTC)
    if moment <= (now or datetime.now(UTC)):
        raise InvalidInputError("expires_at", "expires_at must be in the future")
    return moment.astimezone(UTC)


def check_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME_CHARS:
        raise InvalidInputError(
            "name", f"name must be 1 to {MAX_NAME_CHARS} characters, not only spaces"
        )
    # The API's schema refuses it first; a console form or the CLI reach this check.
    if not is_storable(cleaned):
        raise InvalidInputError("name", f"name {STORABLE_TEXT_RULE}")
    return cleaned


@dataclass(frozen=True, slots=True)
class ListedKey:
    """A key as the console lists it: with its owner's name and whether it still works."""

    key: ApiKey
    owner: str
    # "active"; "expired"; "ended": its owner was changed or deactivated since it was made.
    state: str


def key_state(key: ApiKey, owner: User | None, now: datetime) -> str:
    """Whether `key` still works, by the rules `Principals.for_key` applies."""
    if owner is None or not owner.active or owner.token_version != key.user_token_version:
        return "ended"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def owner_filter(principal: Principal) -> int | None:
    """Whose keys `principal` may see and revoke: an admin everyone's (None), others their own."""
    return None if principal.role is Role.ADMIN else principal.user_id


class ApiKeyRepository(SQLAlchemyAsyncRepository[ApiKey]):
    model_type = ApiKey


class ApiKeyService(SQLAlchemyAsyncRepositoryService[ApiKey, ApiKeyRepository]):
    """Works in the caller's session; `create_key` and `revoke` commit."""

    repository_type = ApiKeyRepository
    # Two queries: the total stays right on a page past the end.
    count_with_window_function = False

    async def create_key(
        self, owner_id: int, name: str, role: Role, expires_at: datetime | None = None
    ) -> tuple[ApiKey, str]:
        """A new key of `owner_id` and its secret (the only time the secret exists in clear).

        The owner's role and token version are read here, not taken from a cached principal:
        the key must not outrank the account as it is now, and it records the version it was
        made under, so any later change of the owner (role, active, password) ends it.
        """
        name = check_name(name)
        expires_at = check_expiry(expires_at)
        owner = await self.repository.session.get(User, owner_id)
        if owner is None or not owner.active:
            raise OwnerInactive("an inactive account cannot own API keys")
        owner_role = Role(owner.role)
        if not may_grant(owner_role, role):
            raise RoleNotGrantable(
                f"an API key's role may not exceed its owner's: an account with the "
                f"{owner_role} role cannot create a key with the {role} role",
                extra={"field": "role"},
            )
        secret = new_secret()
        key = ApiKey(
            user_id=owner.id,
            name=name,
            role=role.value,
            prefix=secret[:PREFIX_CHARS],
            secret_hash=secret_hash(secret),
            user_token_version=owner.token_version,
            expires_at=expires_at,
        )
        key = await self.create(key, auto_commit=True, auto_refresh=True)
        return key, secret

    async def page(
        self, *, owner_id: int | None, limit: int, offset: int
    ) -> OffsetPagination[ApiKeyOut]:
        """The keys of `owner_id` (every key when None), newest first."""
        filters: list[StatementFilter | ColumnElement[bool]] = []
        if owner_id is not None:
            filters.append(ApiKey.user_id == owner_id)
        keys, total = await self.get_many_and_count(
            *filters,
            OrderBy(field_name="id", sort_order="desc"),
            LimitOffset(limit=limit, offset=offset),
        )
        return OffsetPagination(
            items=[as_out(key) for key in keys], total=total, limit=limit, offset=offset
        )

    async def with_owners(self) -> list[tuple[ApiKey, str]]:
        """Every key with its owner's name, oldest first (the CLI's listing)."""
        keys = await self.get_many(OrderBy(field_name="id", sort_order="asc"))
        names = {user.id: user.username for user in (await self._owners(keys)).values()}
        return [(key, names.get(key.user_id, "?")) for key in keys]

    async def listing(
        self, *, owner_id: int | None, limit: int, offset: int
    ) -> tuple[list[ListedKey], int]:
        """A page of `owner_id`'s keys (every key when None), newest first, with their owners
        and states; and how many there are."""
        filters: list[StatementFilter | ColumnElement[bool]] = []
        if owner_id is not None:
            filters.append(ApiKey.user_id == owner_id)
        keys, total = await self.get_many_and_count(
            *filters,
            OrderBy(field_name="id", sort_order="desc"),
            LimitOffset(limit=limit, offset=offset),
        )
        owners, now = await self._owners(keys), datetime.now(UTC)
        listed: list[ListedKey] = []
        for key in keys:
            owner = owners.get(key.user_id)
            name = owner.username if owner is not None else "?"
            listed.append(ListedKey(key=key, owner=name, state=key_state(key, owner, now)))
        return listed, total

    async def _owners(self, keys: Sequence[ApiKey]) -> dict[int, User]:
        owners = select(User).where(User.id.in_({k.user_id for k in keys}))
        return {user.id: user for user in (await self.repository.session.scalars(owners))}

    async def revoke(self, key_id: int, *, owner_id: int | None) -> ApiKey:
        """Delete the key (only one of `owner_id`'s when given). 404 when there is none: a
        key of someone else is not found, so ids reveal nothing about others' keys."""
        filters: list[ColumnElement[bool]] = [ApiKey.id == key_id]
        if owner_id is not None:
            filters.append(ApiKey.user_id == owner_id)
        key = await self.get_one_or_none(*filters)
        if key is None:
            raise NotFound(f"there is no API key {key_id}")
        await self.delete(key.id, auto_commit=True)
        return key


async def issue_key(
    keys: ApiKeyService,
    container: Container,
    creator: Principal,
    name: str,
    role: Role,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key of `creator`'s account and its secret (`ApiKeyService.create_key`, same
    refusals), recorded in the audit trail."""
    key, secret = await keys.create_key(creator.user_id, name, role, expires_at)
    logger.info("API key created: id=%s owner=%s role=%s", key.id, key.user_id, key.role)
    await audit.record(
        container,
        Action.KEY_CREATED,
        actor=creator,
        target=f"api_key:{key.id}",
        details={
            "name": key.name,
            "role": key.role,
            "owner_id": key.user_id,
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        },
    )
    return key, secret


async def revoke_key(
    keys: ApiKeyService,
    container: Container,
    principals: Principals,
    revoker: Principal,
    key_id: int,
) -> ApiKey:
    """Revoke one of `revoker`'s keys (an admin: anyone's); `NotFound` otherwise. This process
    refuses the key from now on (its cache is dropped), others when their short cache expires.
    Recorded in the audit trail."""
    key = await keys.revoke(key_id, owner_id=owner_filter(revoker))
    principals.forget()
    logger.info("API key revoked: id=%s owner=%s", key.id, key.user_id)
    await audit.record(
        container,
        Action.KEY_REVOKED,
        actor=revoker,
        target=f"api_key:{key.id}",
        details={"name": key.name, "role": key.role, "owner_id": key.user_id},
    )
    return key


def as_out(key: ApiKey) -> ApiKeyOut:
    return msgspec.convert(key, ApiKeyOut, from_attributes=True)
