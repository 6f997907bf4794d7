"""Accounts: registration and login, shared by the API and the CLI."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.settings import Settings
from ekimo.users import security
from ekimo.users.models import User
from ekimo.users.rules import (
    UsernameTakenError,
    check_password,
    check_username,
    is_username,
)

_UNIQUE_USERNAME_INDEX = "uq_users_username_lower"


class UserService:
    """Works in the caller's session and commits what it writes."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def register(self, username: str, password: str) -> User:
        """Create an account. Raises `InvalidInputError` or `UsernameTakenError`."""
        check_username(username)
        check_password(password)
        user = User(username=username, password_hash=await security.hash_password(password))
        self.session.add(user)
        try:
            # The unique index on lower(username) decides, so simultaneous sign-ups can't race.
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            if _UNIQUE_USERNAME_INDEX in str(exc.orig):
                raise UsernameTakenError(username) from None
            raise
        return user

    async def find(self, username: str) -> User | None:
        result = await self.session.execute(
            select(User).where(func.lower(User.username) == username.lower())
        )
        return result.scalar_one_or_none()

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; None otherwise, in the same time either way."""
        user = await self.find(username) if is_username(username) else None
        ok = await security.verify_password(password, user.password_hash if user else None)
        return user if ok else None

    def issue_token(self, user: User) -> security.AccessToken:
        secret = self.settings.secret_key
        assert secret is not None, "the container fills the secret key"
        lifetime = timedelta(minutes=self.settings.access_token_expire_minutes)
        return security.create_access_token(user.id, secret, lifetime)
