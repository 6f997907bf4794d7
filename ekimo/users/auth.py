"""Bearer-token authentication for every route, and the rate limit of POST /auth (which
wrong API keys count against too: `WrongKeyLimit`).

Every route needs `Authorization: Bearer <JWT or API key>` except the OpenAPI pages (/docs*),
/health and routes opted out with `exclude_from_auth=True` (POST /users, POST /auth). The
caller's `Principal` is `request.user` in handlers; `guards.authorize` then checks the route's
permission against its role.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from copy import copy
from typing import Any

import anyio
from litestar import Request
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
from ekimo.users.principals import KEY_PREFIX, Principal, Principals
from ekimo.users.security import InvalidTokenError, TokenClaims, decode_access_token

SECURITY_SCHEME = "OAuth2PasswordBearer"
TOKEN_URL = "/auth"  # noqa: S105 (a path, not a secret)
# The console (/ui, and / which redirects there) signs its users in with a session cookie of its
# own (ekimo.web), not a bearer header.
EXCLUDE_PATHS = ["^/docs", "^/health$", "^/ui(/|$)", "^/$"]
EXCLUDE_OPT_KEY = "exclude_from_auth"

LOGIN_ATTEMPTS_PER_MINUTE = 10
RATE_LIMIT_STORE = "ekimo_login_rate_limit"

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ekimo"'}


class Unauthorized(Problem):
    """No valid credentials: 401 with the Bearer challenge."""

    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers=_CHALLENGE)


class WrongApiKey(Unauthorized):
    """An `ekimo_` key that resolves to nothing: unknown, expired, revoked, or its owner
    changed. Counted like a wrong password (`WrongKeyLimit`)."""


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    """Resolves the bearer credential (a JWT or an `ekimo_` API key) to a `Principal`; anything
    wrong is a 401 problem document. No database round trip while the principal is cached."""

    def __init__(self, app: ASGIApp, container: Container, principals: Principals) -> None:
        super().__init__(
            app=app,
            exclude=EXCLUDE_PATHS,
            exclude_from_auth_key=EXCLUDE_OPT_KEY,
            scopes={ScopeType.HTTP, ScopeType.WEBSOCKET},
        )
        self.container = container
        self.principals = principals

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer_token(connection)
        if token is None:
            raise Unauthorized(
                "this endpoint needs 'Authorization: Bearer <token>'; get a token from POST /auth"
            )
        principal = await resolve_request(connection, self.principals, self.container, token)
        return AuthenticationResult(user=principal, auth=token)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The credential of an `Authorization: Bearer ...` header, if the request has one."""
    # The raw headers (ASGI names them in lower case), not `connection.headers`: a mapping of
    # every header built for every request, for one of them.
    header = ""
    for name, value in connection.scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


# Checking a token's signature costs more than the rest of a simple read: a token verified once
# is remembered until it expires (per process, bounded). Revocation is the principal's check.
_VERIFIED: dict[tuple[str, str], TokenClaims] = {}
MAX_VERIFIED = 10_000


def _verified(token: str, secret: str) -> TokenClaims:
    claims = _VERIFIED.get((secret, token))
    if claims is not None and claims.expires_at > time.time():
        return claims
    claims = decode_access_token(token, secret)
    if len(_VERIFIED) >= MAX_VERIFIED:
        _VERIFIED.clear()
    _VERIFIED[(secret, token)] = claims
    return claims


def claims_of(container: Container, token: str) -> TokenClaims | None:
    """The claims of a valid access token (signature and expiry checked), else None."""
    secret = container.settings.secret_key
    assert secret is not None, "the container fills the secret key"
    try:
        return _verified(token, secret)
    except InvalidTokenError:
        return None


async def resolve(principals: Principals, container: Container, token: str) -> Principal:
    """The principal of a bearer credential; `Unauthorized` when it is not (or no longer) valid."""
    if token.startswith(KEY_PREFIX):
        principal = await principals.for_key(token)
        if principal is None:
            raise WrongApiKey("the API key is invalid, expired or revoked")
        return principal
    secret = container.settings.secret_key
    assert secret is not None, "the container fills the secret key"
    try:
        claims = _verified(token, secret)
    except InvalidTokenError:
        raise Unauthorized(
            "the access token is invalid or expired; get a new one from POST /auth"
        ) from None
    principal = await principals.for_token(claims.user_id, claims.version, claims.token_id)
    if principal is None:
        raise Unauthorized(
            "the access token is no longer valid (logged out, or the account was changed, "
            "deactivated or deleted); get a new one from POST /auth"
        )
    return principal


async def resolve_request(
    connection: ASGIConnection[Any, Any, Any, Any],
    principals: Principals,
    container: Container,
    token: str,
) -> Principal:
    """`resolve` for a request: a wrong API key is also counted against the address's login
    attempts, and answers 429 instead of 401 once the address is over the limit."""
    try:
        return await resolve(principals, container, token)
    except WrongApiKey:
        wrong_keys = connection.app.state[WRONG_KEYS_STATE]
        assert isinstance(wrong_keys, WrongKeyLimit)
        await wrong_keys.count(connection)
        raise


class LimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter, answering with a problem document and `Retry-After`. Each
    subclass counts apart (the store's keys carry the class name)."""

    counted = "requests"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except TooManyRequestsException as exc:
            raise self.refusal(exc.headers) from None

    def refusal(self, headers: Mapping[str, str] | None, counted: str | None = None) -> Problem:
        """The 429 problem document, with `Retry-After` from the limiter's reset header."""
        answer = dict(headers or {})
        retry_after = max(1, int(answer.get(self.config.rate_limit_reset_header_key, "60")))
        answer["Retry-After"] = str(retry_after)
        return Problem(
            f"at most {self.max_requests} {counted or self.counted} per minute from one "
            f"address; try again in {retry_after} seconds",
            status=429,
            headers=answer,
        )


class LoginRateLimitMiddleware(LimitMiddleware):
    counted = "login attempts"


login_rate_limit = RateLimitConfig(
    rate_limit=("minute", LOGIN_ATTEMPTS_PER_MINUTE),
    store=RATE_LIMIT_STORE,
    middleware_class=LoginRateLimitMiddleware,
)


class WrongKeyLimit:
    """Wrong API keys count against the address's login attempts (POST /auth's limit), so
    guessing keys is throttled like guessing passwords.

    Only a request whose key resolves to nothing touches the store: a valid credential costs no
    round trip, and the limit is checked only for failing ones (a throttled address that holds
    a valid key may still use it). The counting is the login limiter's own (its store, its key
    `LoginRateLimitMiddleware::<address>`, its history format), so both fill one count.
    """

    def __init__(self) -> None:
        # Never run as middleware: borrowed for its key, history and headers.
        self._login = LoginRateLimitMiddleware(_not_called, login_rate_limit)
        self._lock = anyio.Lock()

    async def count(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """Count one wrong key of the connection's address; 429 if it is already over."""
        login = self._login
        app = connection.app
        store = login_rate_limit.get_store_from_app(app)
        key = login.cache_key_from_request(Request[Any, Any, Any](connection.scope))
        async with self._lock:  # read, then extend: one request at a time in this process
            history = await login.retrieve_cached_history(key, store)
            if len(history.history) >= login.max_requests:
                raise login.refusal(
                    login.create_response_headers(history),
                    counted="login attempts and wrong API keys",
                )
            await login.set_cached_history(key, history, store)


async def _not_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("WrongKeyLimit's limiter is never called as middleware")


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
        self.principals = Principals(container)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(
            0,
            DefineMiddleware(
                BearerTokenMiddleware, container=self.container, principals=self.principals
            ),
        )
        # Handlers that change accounts or keys drop the cache (`principals_of`).
        app_config.state[PRINCIPALS_STATE] = self.principals
        app_config.state[WRONG_KEYS_STATE] = WrongKeyLimit()
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


PRINCIPALS_STATE = "ekimo_principals"
WRONG_KEYS_STATE = "ekimo_wrong_keys"


def principals_of(state: Any) -> Principals:
    """The app's principal cache, from `request.app.state`."""
    principals = state[PRINCIPALS_STATE]
    assert isinstance(principals, Principals)
    return principals
