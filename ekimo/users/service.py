"""Accounts in the database: registration, lookup, password checks and changes, the admins'
changes to roles and active flags, deletion, and access tokens.

`UserService` is an Advanced Alchemy repository service on `User`, shared by the API (injected
per request) and the CLI (made on the command's session). `apply_account_change` is an admin's
change as the API and the console make it: applied, the principal cache dropped, audited.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from advanced_alchemy.exceptions import DuplicateKeyError, ErrorMessages, IntegrityError
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from advanced_alchemy.utils.dataclass import Empty, EmptyType
from sqlalchemy import case, exists, func, select

from ekimo.container import Container
from ekimo.settings import Settings
from ekimo.users import audit, security
from ekimo.users.audit import Action
from ekimo.users.models import User
from ekimo.users.principals import Principal, Principals
from ekimo.users.roles import Role
from ekimo.users.rules import (
    InvalidInputError,
    LastAdminError,
    UsernameTakenError,
    UserNotFoundError,
    WrongPasswordError,
    check_password,
    check_username,
    is_username,
)

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key taken by every account creation (see `UserService.register`).
FIRST_ACCOUNT_LOCK = 0x656B696D6F03
# pg_advisory_xact_lock key taken by every change of a role or an active flag and every
# deletion (see `UserService.change_account`).
ADMINS_LOCK = 0x656B696D6F04
# PostgreSQL's SQLSTATE for a unique violation.
_UNIQUE_VIOLATION = "23505"


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = getattr(exc.__cause__, "orig", None)
    return getattr(orig, "sqlstate", None) == _UNIQUE_VIOLATION


class UserRepository(SQLAlchemyAsyncRepository[User]):
    """The `users` table. A unique violation on insert is always a `DuplicateKeyError`."""

    model_type = User

    async def add(
        self,
        data: User,
        *,
        auto_commit: bool | None = None,
        auto_expunge: bool | None = None,
        auto_refresh: bool | None = None,
        error_messages: ErrorMessages | EmptyType | None = Empty,
        bind_group: str | None = None,
    ) -> User:
        try:
            return await super().add(
                data,
                auto_commit=auto_commit,
                auto_expunge=auto_expunge,
                auto_refresh=auto_refresh,
                error_messages=error_messages,
                bind_group=bind_group,
            )
        except DuplicateKeyError:
            raise
        except IntegrityError as exc:
            # Advanced Alchemy recognises a duplicate by the DETAIL line of the driver's message,
            # which SQLAlchemy 2.1 no longer passes on for asyncpg; the SQLSTATE is still there.
            if _is_unique_violation(exc):
                raise DuplicateKeyError(detail="a row with this key already exists") from exc
            raise


class UserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    """Works in the caller's session; `register` and the methods that change or delete an
    account commit their work."""

    repository_type = UserRepository

    async def register(self, username: str, password: str, role: Role = Role.EDITOR) -> User:
        """Create an account with `role`; the first account of a database is an admin whatever
        the role asked. Raises `InvalidInputError` or `UsernameTakenError`."""
        check_username(username)
        check_password(password)
        user = User(username=username, password_hash=await security.hash_password(password))
        # The database decides who is first: concurrent first sign-ups queue on this lock, and
        # each sees the users committed before it.
        await self.repository.session.execute(
            select(func.pg_advisory_xact_lock(FIRST_ACCOUNT_LOCK))
        )
        user.role = case(  # pyright: ignore[reportAttributeAccessIssue]
            (exists(select(User.id)), role.value), else_=Role.ADMIN.value
        )
        try:
            # The unique index on lower(username) decides, so simultaneous sign-ups can't race.
            # The id comes from a sequence: the name is the only key a new row can duplicate.
            return await self.create(user, auto_commit=True, auto_refresh=True)
        except DuplicateKeyError:
            await self.repository.session.rollback()
            raise UsernameTakenError(username) from None

    async def find(self, username: str) -> User | None:
        """The account of this name, compared ignoring case."""
        return await self.get_one_or_none(func.lower(User.username) == username.lower())

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is active; None otherwise, in
        the same time either way."""
        user = await self.find(username) if is_username(username) else None
        ok = await security.verify_password(password, user.password_hash if user else None)
        return user if ok and user is not None and user.active else None

    async def get_user(self, user_id: int) -> User:
        """The account of this id; `UserNotFoundError` when there is none."""
        user = await self.get_one_or_none(User.id == user_id)
        if user is None:
            raise UserNotFoundError(user_id)
        return user

    async def named(self, username: str) -> User:
        """The account of this name (ignoring case); `UserNotFoundError` when there is none."""
        user = await self.find(username) if is_username(username) else None
        if user is None:
            raise UserNotFoundError(username)
        return user

    async def page(self, *, limit: int, offset: int) -> tuple[Sequence[User], int]:
        """One page of the accounts, oldest first, and how many there are."""
        return await self.get_many_and_count(
            OrderBy(field_name="id", sort_order="asc"),
            LimitOffset(limit=limit, offset=offset),
            # Two queries: the total stays right on a page past the end.
            count_with_window_function=False,
        )

    async def change_password(self, user_id: int, current: str, new: str) -> User:
        """Replace the password after checking the current one, ending every token and key of
        the account. `WrongPasswordError`, `InvalidInputError` (field `new_password`),
        `UserNotFoundError`."""
        try:
            check_password(new)
        except InvalidInputError as exc:
            raise InvalidInputError("new_password", exc.message) from None
        verified = (await self.get_user(user_id)).password_hash
        if not await security.verify_password(current, verified):
            raise WrongPasswordError
        # Hashed before the row is locked: bcrypt takes a while, and the lock should not.
        new_hash = await security.hash_password(new)
        async with self._committed():
            user = await self._locked(user_id)
            if user.password_hash != verified:
                # Changed in between by another request: what was checked is not current.
                raise WrongPasswordError
            user.password_hash = new_hash
            user.token_version += 1
        return user

    async def change_account(
        self, user_id: int, *, role: Role | None = None, active: bool | None = None
    ) -> AccountChange:
        """Give the account `role` and/or set its `active` flag (None: unchanged). A change
        bumps `token_version`, which ends the account's tokens and keys. `LastAdminError` when
        no active admin would be left; `UserNotFoundError`."""
        async with self._admins_locked():
            user = await self._locked(user_id)
            new_role = user.role if role is None else role.value
            new_active = user.active if active is None else active
            change = AccountChange(
                user=user,
                role=(user.role, new_role) if new_role != user.role else None,
                active=(user.active, new_active) if new_active != user.active else None,
            )
            if not change.changed:
                return change
            if new_role != Role.ADMIN:
                await self._keep_an_admin(user, "demoted")
            elif not new_active:
                await self._keep_an_admin(user, "deactivated")
            user.role = new_role
            user.active = new_active
            # The row is locked (FOR UPDATE): nobody else can bump it in between.
            user.token_version += 1
        return change

    async def delete_account(self, user_id: int) -> User:
        """Delete the account; its API keys go with it (ON DELETE CASCADE), its imports and
        audit events keep its id and name. `LastAdminError`, `UserNotFoundError`."""
        async with self._admins_locked():
            user = await self._locked(user_id)
            await self._keep_an_admin(user, "deleted")
            await self.repository.session.delete(user)
        return user

    @contextlib.asynccontextmanager
    async def _committed(self) -> AsyncGenerator[None]:
        """A transaction on the service's session: committed when the block ends, rolled back
        (and the error raised) when it fails."""
        session = self.repository.session
        try:
            yield
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    @contextlib.asynccontextmanager
    async def _admins_locked(self) -> AsyncGenerator[None]:
        """`_committed`, holding `ADMINS_LOCK` until the end. Every change that could take away
        an active admin queues on the lock, and each statement after it sees the changes
        committed before (READ COMMITTED): two admins demoting each other at once cannot both
        see the other one still there."""
        async with self._committed():
            await self.repository.session.execute(select(func.pg_advisory_xact_lock(ADMINS_LOCK)))
            yield

    async def _locked(self, user_id: int) -> User:
        """The account's row, read afresh and locked FOR UPDATE until the transaction ends."""
        statement = (
            select(User)
            .where(User.id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        user = (await self.repository.session.execute(statement)).scalar_one_or_none()
        if user is None:
            raise UserNotFoundError(user_id)
        return user

    async def _keep_an_admin(self, user: User, change: str) -> None:
        """`LastAdminError` when `user` is the only active admin (call under `ADMINS_LOCK`)."""
        if user.role != Role.ADMIN or not user.active:
            return
        others = await self.repository.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN.value, User.active.is_(True), User.id != user.id)
        )
        if not others:
            raise LastAdminError(user.username, change)


@dataclass(frozen=True, slots=True)
class AccountChange:
    """An account after `UserService.change_account`, and what changed: (before, after)."""

    user: User
    role: tuple[str, str] | None = None
    active: tuple[bool, bool] | None = None

    @property
    def changed(self) -> bool:
        return self.role is not None or self.active is not None


async def apply_account_change(
    users: UserService,
    container: Container,
    principals: Principals,
    actor: Principal,
    user_id: int,
    *,
    role: Role | None = None,
    active: bool | None = None,
) -> AccountChange:
    """`actor` (an admin) gives the account `role` and/or sets its `active` flag, as
    `UserService.change_account` (same refusals). A change drops this process's principal
    cache, so it applies here at once (other processes: within their cache time), and each
    changed field is recorded in the audit trail."""
    change = await users.change_account(user_id, role=role, active=active)
    if change.changed:
        principals.forget()
    user, target = change.user, f"user:{change.user.id}"
    if change.role is not None:
        logger.info("role changed: id=%s %s -> %s", user.id, *change.role)
        await audit.record(
            container,
            Action.ROLE_CHANGED,
            actor=actor,
            target=target,
            details={"username": user.username, "from": change.role[0], "to": change.role[1]},
        )
    if change.active is not None:
        logger.info("active changed: id=%s %s -> %s", user.id, *change.active)
        await audit.record(
            container,
            Action.ACTIVE_CHANGED,
            actor=actor,
            target=target,
            details={"username": user.username, "from": change.active[0], "to": change.active[1]},
        )
    return change


def issue_token(user: User, settings: Settings) -> security.AccessToken:
    """An access token for `user`, signed with the app's key, valid for the configured time."""
    secret = settings.secret_key
    assert secret is not None, "the container fills the secret key"
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    return security.create_access_token(user.id, user.token_version, secret, lifetime)
