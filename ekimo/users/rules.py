"""The account rules, and the users domain's errors in the core vocabulary (`ekimo.errors`).

Free of the database and web layers: the CLI checks a name and a password with these before it
starts anything.
"""

from __future__ import annotations

import re

from ekimo.errors import Conflict, InvalidInput, NotFound
from ekimo.users.schemas import (
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_BYTES,
    PASSWORD_RULE,
    USERNAME_PATTERN,
    USERNAME_RULE,
)

_USERNAME = re.compile(USERNAME_PATTERN)


class InvalidInputError(InvalidInput):
    """A field breaks its rule: 422 whose `field` member names it; the detail says what to fix."""

    status = 422
    # Python 3.11's phrase for 422 is still RFC 7231's "Unprocessable Entity".
    title = "Unprocessable Content"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, extra={"field": field})
        self.field = field
        self.message = message


class UsernameTakenError(Conflict):
    """409: an account has this name, compared ignoring case."""

    def __init__(self, username: str) -> None:
        super().__init__(
            f"username {username!r} is already taken (names are compared ignoring case)",
            extra={"field": "username"},
        )
        self.username = username


class UserNotFoundError(NotFound):
    """404: no account has this id (or name)."""

    def __init__(self, user: int | str) -> None:
        what = f"id {user}" if isinstance(user, int) else f"the name {user!r}"
        super().__init__(f"no account has {what}")
        self.user = user


class LastAdminError(Conflict):
    """409: the change would leave no active admin, and nobody could manage accounts again."""

    def __init__(self, username: str, change: str) -> None:
        super().__init__(
            f"{username} is the last active admin and cannot be {change}; make another account "
            "an admin first"
        )
        self.username = username


class WrongPasswordError(InvalidInputError):
    """422 naming `current_password`: not a 401, since the caller's token itself is valid."""

    def __init__(self) -> None:
        super().__init__("current_password", "current_password is not the account's password")


def is_username(username: str) -> bool:
    return _USERNAME.fullmatch(username) is not None


def check_username(username: str) -> None:
    if not is_username(username):
        raise InvalidInputError("username", USERNAME_RULE)


def check_password(password: str) -> None:
    size = len(password.encode("utf-8"))
    if not MIN_PASSWORD_BYTES <= size <= MAX_PASSWORD_BYTES:
        raise InvalidInputError("password", f"{PASSWORD_RULE}; this one is {size} bytes")
