"""The HTTP side of a sync: the bearer token and one batch POST with retries.

The bearer is `SYNC_API_KEY` when set (no login, so no password hash on the receiver per run),
else a token from `POST /auth` with `SYNC_USERNAME` and `SYNC_PASSWORD`.

`SyncClient.send(body, key)` answers `Delivered`, `Rejected` (400/422/413: the receiver refuses
the data) or `Undelivered` (retries exhausted); credentials problems raise `SyncAborted`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from ekimo.settings import Settings

EXCERPT_CHARS = 500
# Refetch the token this long before the receiver says it expires.
TOKEN_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one batch is tried. Tests shrink the delays and the timeout."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    timeout: float | None = None  # per request; None keeps the shared client's timeout


class SyncAborted(Exception):
    """The run cannot go on (credentials refused, wrong URL); the message says what to fix."""


@dataclass(frozen=True)
class Delivered:
    status_code: int


@dataclass(frozen=True)
class Rejected:
    status_code: int
    excerpt: str


@dataclass(frozen=True)
class Undelivered:
    error: str


Outcome = Delivered | Rejected | Undelivered


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _excerpt(response: httpx.Response) -> str:
    return response.text[:EXCERPT_CHARS]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class SyncClient:
    """Talks to `{SYNC_BASE_URL}`; one instance per run, on the process-wide httpx client."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, policy: RetryPolicy) -> None:
        self._http = http
        self._base = settings.sync_base_url.rstrip("/")
        self._username = settings.sync_username
        self._password = settings.sync_password
        self._api_key = settings.sync_api_key
        self._max_attempts = settings.sync_max_attempts
        self._policy = policy
        self._token: str | None = None
        self._token_expires = 0.0
        # Batches go out concurrently; they share one token and one fetch of it.
        self._token_lock = asyncio.Lock()
        self.retries = 0

    async def _post(
        self,
        path: str,
        *,
        data: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        timeout = self._policy.timeout
        return await self._http.post(
            f"{self._base}{path}",
            data=data,
            content=content,
            headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout),
        )

    def _current_token(self) -> str | None:
        if self._token is not None and time.monotonic() < self._token_expires:
            return self._token
        return None

    async def _bearer(self) -> tuple[str, bool]:
        """The token, and whether it was fetched for this request (a 401 then is final)."""
        if self._api_key:
            # Nothing to fetch again: a 401 on the key is final.
            return self._api_key, True
        if (token := self._current_token()) is not None:
            return token, False
        async with self._token_lock:
            if (token := self._current_token()) is not None:
                return token, False
            return await self._fetch_token(), True

    async def _fetch_token(self) -> str:
        if not self._username or not self._password:
            raise SyncAborted(
                "SYNC_USERNAME and SYNC_PASSWORD must be set (or SYNC_API_KEY): they are "
                f"ekimo's account at the external API {self._base}"
            )
        try:
            response = await self._post(
                "/auth", data={"username": self._username, "password": self._password}
            )
        except httpx.TransportError as exc:
            raise _Retryable(f"POST {self._base}/auth: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(
                f"POST {self._base}/auth answered {response.status_code}",
                parse_retry_after(response.headers.get("retry-after")),
            )
        if response.status_code in (400, 401, 403, 422):
            raise SyncAborted(
                f"the external API {self._base} refused SYNC_USERNAME/SYNC_PASSWORD "
                f"({response.status_code} on POST /auth): check the credentials"
            )
        if not response.is_success:
            raise SyncAborted(
                f"POST {self._base}/auth answered {response.status_code}: check SYNC_BASE_URL"
            )
        try:
            payload = response.json()
            token = str(payload["access_token"])
            expires_in = float(payload.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise SyncAborted(
                f"POST {self._base}/auth did not answer a token ({exc!r}): check SYNC_BASE_URL"
            ) from None
        self._token = token
        self._token_expires = time.monotonic() + max(0.0, expires_in - TOKEN_MARGIN_SECONDS)
        return token

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        policy = self._policy
        backoff = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
        backoff = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not security
        if retry_after is not None:
            return max(min(retry_after, policy.max_retry_after), backoff)
        return backoff

    async def _attempt(self, body: bytes, key: str) -> Outcome:
        """One POST (plus one token refetch on a 401 with a reused token)."""
        refetched = False
        while True:
            token, fresh = await self._bearer()
            try:
                response = await self._post(
                    "/products",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": key,
                        "Content-Type": "application/json",
                    },
                )
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc or 'no details'}") from exc
            status = response.status_code
            if response.is_success:
                return Delivered(status)
            if status == 401:
                if self._api_key:
                    raise SyncAborted(
                        f"the external API {self._base} refuses SYNC_API_KEY (401): the key is "
                        "wrong, expired or revoked, or its account changed; make a new one"
                    )
                if fresh or refetched:
                    raise SyncAborted(
                        f"the external API {self._base} refuses the token it issued for "
                        "SYNC_USERNAME (401): check the account and its rights"
                    )
                if self._token == token:  # not already replaced by a concurrent batch
                    self._token = None
                refetched = True
                continue
            if status == 403:
                who, fix = (
                    ("SYNC_API_KEY", "use a key with the receiver or editor role")
                    if self._api_key
                    else ("SYNC_USERNAME", "check the account's rights")
                )
                raise SyncAborted(
                    f"the external API {self._base} forbids {who} to post products (403): {fix}"
                )
            if status in (400, 413, 422):
                return Rejected(status, _excerpt(response))
            if status == 429 or status >= 500:
                raise _Retryable(
                    f"POST /products answered {status}: {_excerpt(response)[:200]}",
                    parse_retry_after(response.headers.get("retry-after")),
                )
            raise SyncAborted(
                f"POST {self._base}/products answered {status}: check SYNC_BASE_URL "
                f"({_excerpt(response)[:200]})"
            )

    async def send(self, body: bytes, key: str) -> Outcome:
        """POST one batch, retrying connection errors, timeouts, 429 and 5xx with backoff."""
        error = "not attempted"
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await self._attempt(body, key)
            except _Retryable as exc:
                error = str(exc)
                if attempt == self._max_attempts:
                    break
                self.retries += 1
                await asyncio.sleep(self._delay(attempt, exc.retry_after))
        return Undelivered(f"gave up after {self._max_attempts} attempts: {error}")
