"""Configuration from the environment and an optional `.env` file, validated at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from dotenv import dotenv_values

MIN_SECRET_KEY_LENGTH = 32


class SettingsError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every field maps to the upper-case environment variable of the same name."""

    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    access_token_expire_minutes: PositiveInt = 30
    sync_interval_minutes: Annotated[int, msgspec.Meta(ge=1, le=59)] = 10
    sync_base_url: str = "http://127.0.0.1:8000"
    sync_username: str | None = None
    sync_password: str | None = None
    # An API key of the external API (a `receiver` key of another ekimo): sent as the bearer
    # token instead of logging in with SYNC_USERNAME and SYNC_PASSWORD.
    sync_api_key: str | None = None
    # Per-request costs (token check, sessions, commit) are small against 5000 products, and a
    # body of typical products is under a megabyte; an ekimo receiver takes at most 10,000.
    sync_batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5000
    sync_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    max_upload_mb: PositiveInt = 100
    # The console's Import page queues a file larger than this for the worker (as PUT
    # /products?async=true) and follows its progress; a smaller one is imported while the page
    # waits. 0: every file is queued.
    console_async_import_mb: Annotated[int, msgspec.Meta(ge=0)] = 10
    # `open`: anyone may register (POST /users); `closed`: only admins create accounts.
    registration: Literal["open", "closed"] = "open"
    # The role of a self-registered account.
    registration_role: Literal["viewer", "editor", "admin", "receiver"] = "editor"
    # Where the embedded server keeps its data and the generated secret key.
    state_dir: Path = Path(".ekimo")
    # On SIGTERM/SIGINT, how long requests and jobs in flight may run before they are cut.
    shutdown_grace_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0
    # GET /metrics (Prometheus), outside authentication like /health.
    metrics: bool = True
    # `text` (one readable line per event) or `json` (one object per line, for log shippers).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # SAQ queue name; separate names keep test runs sharing one Redis apart.
    queue_name: str = "ekimo"

    @property
    def embedded(self) -> bool:
        """True when ekimo must run its own PostgreSQL (no `DATABASE_URL`)."""
        return self.database_url is None

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def console_async_import_bytes(self) -> int:
        return self.console_async_import_mb * 1024 * 1024

    def with_values(self, **changes: object) -> Settings:
        return msgspec.structs.replace(self, **changes)


_INTERNAL = {"state_dir", "queue_name"}
# Names that read the same in any case (LOG_LEVEL=debug).
_CASE = {"log_level": str.upper, "log_format": str.lower}


def _env_name(field: str) -> str:
    return f"EKIMO_{field.upper()}" if field in _INTERNAL else field.upper()


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> Settings:
    """Read settings; the process environment wins over `.env`. Raises `SettingsError`."""
    env_file = env_file if env_file is not None else Path.cwd() / ".env"
    values: dict[str, str] = {}
    if env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    raw: dict[str, str] = {}
    for field in Settings.__struct_fields__:
        value = values.get(_env_name(field))
        if value is not None and value.strip() != "":
            raw[field] = _CASE.get(field, str.strip)(value.strip())
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
    _check(settings)
    return settings


def _decode(kind: type, value: object) -> object:
    # msgspec leaves paths to the caller: EKIMO_STATE_DIR is one.
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot read {kind.__name__} from the environment")


def _explain(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    # msgspec reports "... - at `$.field`"; name the environment variable instead.
    if " - at `$." in message:
        text, _, path = message.rpartition(" - at `$.")
        field = path.rstrip("`").split(".")[0].split("[")[0]
        return f"{_env_name(field)}: {text}"
    return message


def _check(settings: Settings) -> None:
    if settings.database_url is not None:
        scheme = settings.database_url.split("://", 1)[0]
        if scheme not in ("postgresql", "postgresql+asyncpg", "postgres"):
            raise SettingsError(
                "DATABASE_URL: expected a postgresql:// or postgresql+asyncpg:// URL, "
                f"got scheme {scheme!r}"
            )
        if settings.secret_key is None:
            raise SettingsError(
                "SECRET_KEY: required when DATABASE_URL is set (at least "
                f"{MIN_SECRET_KEY_LENGTH} characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
    if settings.secret_key is not None and len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(f"SECRET_KEY: must be at least {MIN_SECRET_KEY_LENGTH} characters")
    if settings.redis_url is not None and not settings.redis_url.startswith(
        ("redis://", "rediss://")
    ):
        raise SettingsError("REDIS_URL: expected a redis:// or rediss:// URL")
    if not settings.sync_base_url.startswith(("http://", "https://")):
        raise SettingsError("SYNC_BASE_URL: expected an http:// or https:// URL")
