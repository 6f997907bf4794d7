"""Logging in with a username and a password: POST /auth and the console's log-in form."""

from __future__ import annotations

from ekimo.container import Container
from ekimo.users import audit
from ekimo.users.audit import Action
from ekimo.users.auth import Unauthorized
from ekimo.users.security import AccessToken
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
