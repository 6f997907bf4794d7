"""Bearer-token authentication for every route, and the rate limit of POST /auth.

Every route needs `Authorization: Bearer <JWT>` except the OpenAPI pages (/docs*), /health and
routes opted out with `exclude_from_auth=True` (POST /users, POST /auth). The authenticated
`User` is `request.user` in handlers.
"""

from __future__ import annotations

from copy import copy
from typing import Any

from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import DefineMiddleware
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme
from litestar.plugins import InitPluginProtocol
from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from litestar.stores.registry import StoreRegistry
from litestar.types import ASGIApp, Receive, Scope, Send

from ekimo.container import Container
from ekimo.errors import Problem
from ekimo.settings import Settings
from ekimo.users.models import User
from ekimo.users.security import InvalidTokenError, decode_access_token

SECURITY_SCHEME = "OAuth2PasswordBearer"
TOKEN_URL = "/auth"  # noqa: S105 (a path, not a secret)
EXCLUDE_PATHS = ["^/docs", "^/health$"]
EXCLUDE_OPT_KEY = "exclude_from_auth"

LOGIN_ATTEMPTS_PER_MINUTE = 10
RATE_LIMIT_STORE = "ekimo_login_rate_limit"

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ekimo"'}


class Unauthorized(Problem):
    """No valid credentials: 401 with the Bearer challenge."""

    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers=_CHALLENGE)


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    """Decodes the HS256 JWT and loads its user; anything wrong is a 401 problem document."""

    def __init__(self, app: ASGIApp, container: Container) -> None:
        super().__init__(
            app=app,
            exclude=EXCLUDE_PATHS,
            exclude_from_auth_key=EXCLUDE_OPT_KEY,
            scopes={ScopeType.HTTP, ScopeType.WEBSOCKET},
        )
        self.container = container

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "this endpoint needs 'Authorization: Bearer <token>'; get a token from POST /auth"
            )
        secret = self.container.settings.secret_key
        assert secret is not None, "the container fills the secret key"
        try:
            user_id = decode_access_token(token, secret)
        except InvalidTokenError:
            raise Unauthorized(
                "the access token is invalid or expired; get a new one from POST /auth"
            ) from None
        async with self.container.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise Unauthorized("the access token's user no longer exists")
        return AuthenticationResult(user=user, auth=token)


class LoginRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter, answering with a problem document and `Retry-After`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except TooManyRequestsException as exc:
            headers = dict(exc.headers or {})
            retry_after = max(1, int(headers.get(self.config.rate_limit_reset_header_key, "60")))
            headers["Retry-After"] = str(retry_after)
            raise Problem(
                f"at most {LOGIN_ATTEMPTS_PER_MINUTE} login attempts per minute from one "
                f"address; try again in {retry_after} seconds",
                status=429,
                headers=headers,
            ) from None


login_rate_limit = RateLimitConfig(
    rate_limit=("minute", LOGIN_ATTEMPTS_PER_MINUTE),
    store=RATE_LIMIT_STORE,
    middleware_class=LoginRateLimitMiddleware,
)


def _rate_limit_namespace(settings: Settings) -> str:
    # The queue name differs per deployment and per test run sharing one Redis.
    return f"{settings.queue_name}:login-rate-limit"


def rate_limit_store(container: Container) -> Store | None:
    """Redis when configured (the limit then holds across processes); None: in memory."""
    redis = container.redis
    if redis is None:
        return None
    return RedisStore(redis, namespace=_rate_limit_namespace(container.configured))


async def reset_rate_limits(container: Container) -> None:
    """Forget every login attempt counted in Redis (tests; an operator after an incident)."""
    store = rate_limit_store(container)
    if store is not None:
        await store.delete_all()


def _security_scheme() -> Components:
    return Components(
        security_schemes={
            SECURITY_SCHEME: SecurityScheme(
                type="oauth2",
                description=(
                    "Bearer JWT from POST /auth (OAuth2 password flow: username and password)."
                ),
                flows=OAuthFlows(password=OAuthFlow(token_url=TOKEN_URL, scopes={})),
            )
        }
    )


class AuthPlugin(InitPluginProtocol):
    def __init__(self, container: Container) -> None:
        self.container = container

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(
            0, DefineMiddleware(BearerTokenMiddleware, container=self.container)
        )
        store = rate_limit_store(self.container)
        if store is not None:
            stores = app_config.stores
            if isinstance(stores, StoreRegistry):
                stores.register(RATE_LIMIT_STORE, store, allow_override=True)
            else:
                app_config.stores = {**(stores or {}), RATE_LIMIT_STORE: store}
        if app_config.openapi_config is not None:
            openapi = copy(app_config.openapi_config)
            components = openapi.components
            openapi.components = [
                _security_scheme(),
                *(components if isinstance(components, list) else [components]),
            ]
            openapi.security = [*(openapi.security or []), {SECURITY_SCHEME: []}]
            app_config.openapi_config = openapi
        return app_config


def auth_plugin(container: Container) -> InitPluginProtocol:
    return AuthPlugin(container)
