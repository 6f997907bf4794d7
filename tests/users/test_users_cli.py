"""`ekimo users create --role`, `ekimo users set-role`, `ekimo users deactivate`: the real command
against this run's database, checked through the HTTP API and the tables."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from ekimo.container import Container
from ekimo.users.audit import Action
from tests.conftest import PASSWORD, register_and_login, run_cli
from tests.users.test_accounts import _login, _me, _refused_within

Headers = dict[str, str]


def _create(env: dict[str, str], username: str, *options: str) -> Any:
    return run_cli(
        env, "users", "create", username, *options, "--password-stdin", input=f"{PASSWORD}\n"
    )


async def _account(container: Container, username: str) -> dict[str, Any] | None:
    async with container.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT id, role, active, token_version FROM users WHERE username = :u"),
                {"u": username},
            )
        ).one_or_none()
    return dict(row._mapping) if row is not None else None


async def _events(container: Container, action: str) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM audit_events WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(r._mapping) for r in rows]


def _one_line_error(result: Any, code: int, says: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error:"), result.stderr
    assert says in result.stderr, result.stderr


async def test_the_first_account_is_an_admin_whatever_the_role(
    cli_env: dict[str, str], container: Container
) -> None:
    result = _create(cli_env, "boss", "--role", "viewer")

    assert result.returncode == 0, result.stderr
    assert "role admin" in result.stdout
    assert "first account" in result.stdout
    account = await _account(container, "boss")
    assert account is not None
    assert account["role"] == "admin"


async def test_create_gives_the_role_asked_and_editor_by_default(
    cli_env: dict[str, str], client: httpx.AsyncClient, container: Container
) -> None:
    admin = await register_and_login(client, "root")

    viewer = _create(cli_env, "watcher", "--role", "VIEWER")
    editor = _create(cli_env, "writer")

    assert viewer.returncode == 0, viewer.stderr
    assert editor.returncode == 0, editor.stderr
    assert "role viewer" in viewer.stdout
    listed = (await client.get("/users", headers=admin)).json()["items"]
    assert {u["username"]: u["role"] for u in listed} == {
        "root": "admin",
        "watcher": "viewer",
        "writer": "editor",
    }
    events = await _events(container, Action.USER_CREATED)
    assert [(e["details"]["username"], e["details"]["via"]) for e in events] == [
        ("watcher", "cli"),
        ("writer", "cli"),
    ]


async def test_an_unknown_role_is_a_one_line_usage_error(
    cli_env: dict[str, str], container: Container
) -> None:
    result = _create(cli_env, "someone", "--role", "superuser")

    _one_line_error(result, 2, "unknown role 'superuser'")
    assert "viewer, editor, admin, receiver" in result.stderr
    assert await _account(container, "someone") is None
    _one_line_error(run_cli(cli_env, "users", "set-role", "someone", "root"), 2, "unknown role")


async def test_set_role_ends_the_accounts_tokens(
    cli_env: dict[str, str], client: httpx.AsyncClient, container: Container
) -> None:
    await register_and_login(client, "root")
    bob = await register_and_login(client, "bob")
    bob_id = (await _me(client, bob))["id"]

    result = run_cli(cli_env, "users", "set-role", "BOB", "viewer")

    assert result.returncode == 0, result.stderr
    assert "editor → viewer" in result.stdout
    # Another process made the change: this app sees it when its cache entry expires.
    await _refused_within(client, bob)
    assert (await _me(client, await _login(client, "bob")))["role"] == "viewer"
    [event] = await _events(container, Action.ROLE_CHANGED)
    assert event["target"] == f"user:{bob_id}"
    assert (event["details"]["from"], event["details"]["to"]) == ("editor", "viewer")
    assert event["details"]["via"] == "cli"

    again = run_cli(cli_env, "users", "set-role", "bob", "viewer")

    assert again.returncode == 0, again.stderr
    assert "already has the role viewer" in again.stdout
    account = await _account(container, "bob")
    assert account is not None
    assert account["token_version"] == 1


async def test_set_role_of_a_missing_account_exits_1(cli_env: dict[str, str]) -> None:
    _one_line_error(run_cli(cli_env, "users", "set-role", "nobody", "viewer"), 1, "'nobody'")


async def test_the_last_admin_keeps_the_role_and_stays_active(
    cli_env: dict[str, str], client: httpx.AsyncClient, container: Container
) -> None:
    admin = await register_and_login(client, "root")

    demoted = run_cli(cli_env, "users", "set-role", "root", "editor")
    deactivated = run_cli(cli_env, "users", "deactivate", "root")

    _one_line_error(demoted, 1, "last active admin")
    _one_line_error(deactivated, 1, "last active admin")
    assert (await _me(client, admin))["role"] == "admin"
    account = await _account(container, "root")
    assert account is not None
    assert (account["role"], account["active"], account["token_version"]) == ("admin", True, 0)


async def test_deactivate_refuses_the_accounts_tokens_and_logins(
    cli_env: dict[str, str], client: httpx.AsyncClient, container: Container
) -> None:
    await register_and_login(client, "root")
    bob = await register_and_login(client, "bob")

    result = run_cli(cli_env, "users", "deactivate", "bob")

    assert result.returncode == 0, result.stderr
    assert "deactivated bob" in result.stdout
    await _refused_within(client, bob)
    login = await client.post("/auth", data={"username": "bob", "password": PASSWORD})
    assert login.status_code == 401, login.text
    [event] = await _events(container, Action.ACTIVE_CHANGED)
    assert (event["details"]["from"], event["details"]["to"]) == (True, False)

    again = run_cli(cli_env, "users", "deactivate", "bob")

    assert again.returncode == 0, again.stderr
    assert "inactive already" in again.stdout
    assert len(await _events(container, Action.ACTIVE_CHANGED)) == 1


async def test_deactivate_a_missing_account_exits_1(cli_env: dict[str, str]) -> None:
    _one_line_error(run_cli(cli_env, "users", "deactivate", "nobody"), 1, "no account")
