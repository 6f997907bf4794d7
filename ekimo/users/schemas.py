"""Request and response bodies of /users and /auth."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{3,64}$"
USERNAME_RULE = "username must be 3 to 64 characters of letters (A-Z, a-z), digits and . _ - @"
# A message, not a secret.
PASSWORD_RULE = "password must be 8 to 72 bytes of UTF-8 (bcrypt's limit; never truncated)"  # noqa: S105

# The schema states the rules for OpenAPI; the service checks them again (the CLI uses it too).
Username = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=64,
        pattern=USERNAME_PATTERN,
        description="3 to 64 letters, digits and `._-@`; unique without regard to case",
        examples=["alice"],
    ),
]
Password = Annotated[
    str,
    msgspec.Meta(
        # 72 characters are at least 72 bytes; the byte count itself is checked by the service.
        max_length=72,
        description="8 to 72 bytes of UTF-8 (bcrypt's limit)",
        examples=["correct horse battery"],
    ),
]


class RegisterRequest(msgspec.Struct):
    username: Username
    password: Password


class UserOut(msgspec.Struct):
    id: int
    username: str
    created_at: datetime


class RegisterResponse(msgspec.Struct):
    user: UserOut


class LoginRequest(msgspec.Struct):
    """JSON form of the login; `application/x-www-form-urlencoded` carries the same fields."""

    username: str
    password: str


class TokenResponse(msgspec.Struct):
    access_token: str
    expires_in: Annotated[int, msgspec.Meta(description="seconds until the token expires")]
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
