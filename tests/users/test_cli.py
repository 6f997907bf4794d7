"""`ekimo users create`, run as the real command against this run's database."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, run_cli


async def test_create_user_from_stdin_then_log_in(
    cli_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    result = run_cli(cli_env, "users", "create", "bob", "--password-stdin", input=f"{PASSWORD}\n")

    assert result.returncode == 0, result.stderr
    assert "bob" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    login = await client.post("/auth", data={"username": "bob", "password": PASSWORD})
    assert login.status_code == 200, login.text


async def test_existing_name_ignoring_case_exits_1(cli_env: dict[str, str]) -> None:
    first = run_cli(cli_env, "users", "create", "bob", "--password-stdin", input=f"{PASSWORD}\n")
    assert first.returncode == 0, first.stderr

    again = run_cli(cli_env, "users", "create", "BOB", "--password-stdin", input=f"{PASSWORD}\n")

    assert again.returncode == 1, again.stderr
    assert "already taken" in again.stderr


async def test_invalid_username_exits_2(cli_env: dict[str, str]) -> None:
    result = run_cli(cli_env, "users", "create", "b!", "--password-stdin", input=f"{PASSWORD}\n")
    assert result.returncode == 2
    assert "3 to 64 characters" in result.stderr


async def test_invalid_password_exits_2(cli_env: dict[str, str]) -> None:
    short = run_cli(cli_env, "users", "create", "bob", "--password-stdin", input="short\n")
    assert short.returncode == 2
    assert "8 to 72 bytes" in short.stderr

    long = run_cli(cli_env, "users", "create", "bob", "--password-stdin", input="é" * 37 + "\n")
    assert long.returncode == 2
    assert "74 bytes" in long.stderr

    empty = run_cli(cli_env, "users", "create", "bob", "--password-stdin", input="")
    assert empty.returncode == 2


async def test_prompt_asks_twice_and_hides_the_password(
    cli_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    result = run_cli(cli_env, "users", "create", "carol", input=f"{PASSWORD}\n{PASSWORD}\n")

    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout
    login = await client.post("/auth", data={"username": "carol", "password": PASSWORD})
    assert login.status_code == 200, login.text
