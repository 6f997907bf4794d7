"""Accounts in the database: registration, lookup by name, password checks and access tokens.

`UserService` is an Advanced Alchemy repository service on `User`, shared by the API (injected
per request) and the CLI (made on the command's session).
"""

from __future__ import annotations

from datetime import timedelta

from advanced_alchemy.exceptions import DuplicateKeyError, ErrorMessages, IntegrityError
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from advanced_alchemy.utils.dataclass import Empty, EmptyType
from sqlalchemy import func

from ekimo.settings import Settings
from ekimo.users import security
from ekimo.users.models import User
from ekimo.users.rules import (
    UsernameTakenError,
    check_password,
    check_username,
    is_username,
)

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
    """Works in the caller's session; `register` commits the account it adds."""

    repository_type = UserRepository

    async def register(self, username: str, password: str) -> User:
        """Create an account. Raises `InvalidInputError` or `UsernameTakenError`."""
        check_username(username)
        check_password(password)
        user = User(username=username, password_hash=await security.hash_password(password))
        try:
            # The unique index on lower(username) decides, so simultaneous sign-ups can't race.
            # The id comes from a sequence: the name is the only key a new row can duplicate.
            return await self.create(user, auto_commit=True, auto_refresh=False)
        except DuplicateKeyError:
            await self.repository.session.rollback()
            raise UsernameTakenError(username) from None

    async def find(self, username: str) -> User | None:
        """The account of this name, compared ignoring case."""
        return await self.get_one_or_none(func.lower(User.username) == username.lower())

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; None otherwise, in the same time either way."""
        user = await self.find(username) if is_username(username) else None
        ok = await security.verify_password(password, user.password_hash if user else None)
        return user if ok else None


def issue_token(user: User, settings: Settings) -> security.AccessToken:
    """An access token for `user`, signed with the app's key, valid for the configured time."""
    secret = settings.secret_key
    assert secret is not None, "the container fills the secret key"
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    return security.create_access_token(user.id, secret, lifetime)
