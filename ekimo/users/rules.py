"""The account rules a CLI can check before any database work (the service enforces them)."""

from __future__ import annotations

import re

from ekimo.users import security
from ekimo.users.schemas import PASSWORD_RULE, USERNAME_PATTERN, USERNAME_RULE

_USERNAME = re.compile(USERNAME_PATTERN)


class InvalidInputError(Exception):
    """A field breaks its rule; `field` names it, the message says what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class UsernameTakenError(Exception):
    def __init__(self, username: str) -> None:
        super().__init__(
            f"username {username!r} is already taken (names are compared ignoring case)"
        )
        self.username = username


def is_username(username: str) -> bool:
    return _USERNAME.fullmatch(username) is not None


def check_username(username: str) -> None:
    if not is_username(username):
        raise InvalidInputError("username", USERNAME_RULE)


def check_password(password: str) -> None:
    size = len(password.encode("utf-8"))
    if not security.MIN_PASSWORD_BYTES <= size <= security.MAX_PASSWORD_BYTES:
        raise InvalidInputError("password", f"{PASSWORD_RULE}; this one is {size} bytes")
