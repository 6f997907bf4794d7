"""Request and response bodies of /users and /auth."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from ekimo.bounds import STORABLE_TEXT, StorableText

USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{3,64}$"
USERNAME_RULE = "username must be 3 to 64 characters of letters (A-Z, a-z), digits and . _ - @"
# A message, not a secret.
# bcrypt only looks at the first 72 bytes; longer passwords are refused, never truncated.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_BYTES = 8
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


RoleName = Literal["viewer", "editor", "admin", "receiver"]


class RegisterRequest(msgspec.Struct):
    username: Username
    password: Password
    # Only an admin may choose; a self-registered account gets REGISTRATION_ROLE.
    role: RoleName | None = None


class UserOut(msgspec.Struct):
    id: int
    username: str
    role: RoleName
    active: bool
    created_at: datetime


class RegisterResponse(msgspec.Struct):
    user: UserOut


class UserResponse(msgspec.Struct):
    """One account: GET /users/me, GET and PATCH /users/{id}."""

    user: UserOut


class PasswordChangeRequest(msgspec.Struct):
    current_password: str
    # Checked by the service with the registration's rule, so that both answer the same 422.
    new_password: Annotated[
        str,
        msgspec.Meta(
            description="8 to 72 bytes of UTF-8 (bcrypt's limit)", examples=["a new passphrase"]
        ),
    ]


class AccountPatch(msgspec.Struct, forbid_unknown_fields=True):
    """What an admin changes; an absent field stays as it is. Unknown fields are refused, so a
    misspelt one is not mistaken for "nothing to change"."""

    role: RoleName | None = None
    active: bool | None = None


class LoginRequest(msgspec.Struct):
    """JSON form of the login; `application/x-www-form-urlencoded` carries the same fields."""

    # Stored even when the login fails (the audit trail names who tried): no NUL.
    username: StorableText
    password: str


class TokenResponse(msgspec.Struct):
    access_token: str
    expires_in: Annotated[int, msgspec.Meta(description="seconds until the token expires")]
    token_type: Literal["bearer"] = "bearer"  # noqa: S105


class AuditEventOut(msgspec.Struct):
    """One event of the audit trail: who (`actor_id`, `actor_name`; kept when the account is
    gone), what (`action`), to what (`target`, e.g. `user:7`, `api_key:3`, `import:12`)."""

    id: int
    at: datetime
    actor_id: int | None
    actor_name: str | None
    action: str
    target: str | None
    details: dict[str, Any]


# -- API keys ------------------------------------------------------------------------------

KeyName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=STORABLE_TEXT,
        description="What the key is for, shown in listings (1 to 100 characters, no NUL)",
        examples=["partner-shop"],
    ),
]


class ApiKeyCreateRequest(msgspec.Struct):
    name: KeyName
    # At most the creator's role (a receiver or viewer key for a viewer's, and so on).
    role: RoleName
    expires_at: Annotated[
        datetime | None,
        msgspec.Meta(description="When the key stops working (UTC if no offset); never if absent"),
    ] = None


class ApiKeyOut(msgspec.Struct):
    """An API key as listed: never its secret, only its first characters (`prefix`)."""

    id: int
    name: str
    role: RoleName
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(msgspec.Struct):
    api_key: ApiKeyOut
    secret: Annotated[
        str,
        msgspec.Meta(description="`Authorization: Bearer <secret>`; shown this once, never again"),
    ]
