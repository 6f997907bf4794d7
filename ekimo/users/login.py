"""Logging in with a username and a password, and out: POST and DELETE /auth, and the
console's log-in form and log-out button."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert

from ekimo.container import Container
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.auth import Unauthorized
from ekimo.users.models import RevokedToken
from ekimo.users.principals import Principals
from ekimo.users.security import AccessToken, TokenClaims
from ekimo.users.service import UserService, issue_token

# One answer for an unknown name and a wrong password: the form tells nobody which names exist.
WRONG_CREDENTIALS = "wrong username or password"


async def log_in(
    users: UserService, container: Container, username: str, password: str, address: str | None
) -> AccessToken:
    """An access token for the account; `Unauthorized` (audited) when the credentials are wrong
    or the account is inactive."""
    user = await users.authenticate(username, password)
    if user is None:
        await audit.record(
            container,
            Action.LOGIN_FAILED,
            actor_name=username[:64],
            details={"address": address},
        )
        raise Unauthorized(WRONG_CREDENTIALS)
    return issue_token(user, container.settings)


async def log_out(container: Container, principals: Principals, claims: TokenClaims) -> None:
    """End this access token now, not at its expiry; the account's other tokens live on. Other
    processes see it within their cache's time, this one at once."""
    expires = datetime.fromtimestamp(claims.expires_at, UTC)
    async with container.engine.begin() as conn:
        await conn.execute(
            insert(RevokedToken)
            .values(token_id=claims.token_id, user_id=claims.user_id, expires_at=expires)
            .on_conflict_do_nothing()
        )
        # Expired tokens are refused anyway: their rows only take room.
        await conn.execute(delete(RevokedToken).where(RevokedToken.expires_at <= func.now()))
    principals.forget()
