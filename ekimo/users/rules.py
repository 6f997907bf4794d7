"""The account rules, and the users domain's errors in the core vocabulary (`ekimo.errors`).

Free of the database and web layers: the CLI checks a name and a password with these before it
starts anything.
"""

from __future__ import annotations

import re

from ekimo.errors import Conflict, InvalidInput
from ekimo.users import security
from ekimo.users.schemas import PASSWORD_RULE, USERNAME_PATTERN, USERNAME_RULE

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


def is_username(username: str) -> bool:
    return _USERNAME.fullmatch(username) is not None


def check_username(username: str) -> None:
    if not is_username(username):
        raise InvalidInputError("username", USERNAME_RULE)


def check_password(password: str) -> None:
    size = len(password.encode("utf-8"))
    if not security.MIN_PASSWORD_BYTES <= size <= security.MAX_PASSWORD_BYTES:
        raise InvalidInputError("password", f"{PASSWORD_RULE}; this one is {size} bytes")
