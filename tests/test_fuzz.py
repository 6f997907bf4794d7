"""Schema fuzzing: every operation of /docs/openapi.json, called as an admin with values that
Schemathesis derives from the schema (fixed seed, deterministic), must answer without a server
error and only with a status code its operation documents.

The app runs in-process, through Schemathesis' ASGI transport, on a container of its own (its
own engine in Schemathesis' event loop) and a queue of its own, so the jobs that POST /sync and
asynchronous imports queue are never run by another test's worker.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from litestar import Litestar
from schemathesis import Case, HookContext
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi

from ekimo.container import Container
from ekimo.entry.app import create_app
from ekimo.settings import Settings

SEED = 20_251_130
# Per operation and generation mode, in the fuzzing phase; the examples and coverage phases
# (boundary values derived from each schema) add their own cases.
MAX_EXAMPLES = 25
# Not an example of the schema: a generated password change must not guess it.
PASSWORD = "fuzzing admin " + secrets.token_hex(8)

# Values PostgreSQL refuses, offered to every string and integer parameter besides what
# Hypothesis draws: the text it cannot store and the integers just beyond bigint.
EDGES = {
    "text": ["\x00", "a\x00b"],
    "integer": [0, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1],
}
EDGE_PROBABILITY = 0.25

# No operation is left out; what could end the run's own session is bounded instead:
# - DELETE and PATCH /users/{user_id} on the run's own account would delete it or end its token
#   (once a generated sign-up has made another admin, the last-admin rule lets them): that id is
#   swapped for another account's (`_spare_own_account`), any other id is called as generated.
# - POST /users/me/password ends the caller's token only with the right current password,
#   which no generator guesses (it is no example of the schema), so every change is refused.
# - POST /sync and asynchronous imports queue jobs: on the app's own queue, which no worker runs.


@pytest.fixture
def fuzz_app(settings: Settings) -> Iterator[Litestar]:
    """The real app, started by Schemathesis' ASGI client (its lifespan opens the container)."""
    app = create_app(Container(settings.with_values(queue_name=f"{settings.queue_name}-fuzz")))
    yield app
    asgi.shutdown_lifespans()


@dataclass(frozen=True)
class Admin:
    id: int
    authorization: str


def _admin_and_document(app: Litestar) -> tuple[Admin, dict[str, Any]]:
    """The first account of the database (an admin, by the registration rule), logged in."""
    with asgi.get_client(app) as client:  # pyright: ignore[reportArgumentType] (ASGI typings differ)
        created = client.post("/users", json={"username": "fuzzer", "password": PASSWORD})
        assert created.status_code == 201, created.text
        assert created.json()["user"]["role"] == "admin"
        token = client.post("/auth", data={"username": "fuzzer", "password": PASSWORD})
        assert token.status_code == 200, token.text
        document = client.get("/docs/openapi.json").json()
    admin = Admin(created.json()["user"]["id"], f"Bearer {token.json()['access_token']}")
    return admin, document


def _spare_own_account(admin: Admin) -> Callable[[HookContext, Case], Case]:
    """A `map_case` hook: deleting or changing the run's own account becomes the next id's."""

    def map_case(context: HookContext, case: Case) -> Case:
        operation = case.operation
        if (
            operation.path == "/users/{user_id}"
            and operation.method.upper() in ("DELETE", "PATCH")
            and str(case.path_parameters.get("user_id")) == str(admin.id)
        ):
            case.path_parameters["user_id"] = admin.id + 1
        return case

    return map_case


def _text_parameters(document: dict[str, Any]) -> dict[str, Any]:
    """A dictionary binding for each text parameter of the document (query or path).

    Schemathesis binds type-wide dictionaries only to parameters whose schema has a `type`;
    an optional one is `oneOf: [string, null]`, so each is bound by name.
    """
    bindings: dict[str, Any] = {}
    for item in document["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kinds = [schema, *schema.get("oneOf", [])]
                if any(kind.get("type") == "string" for kind in kinds):
                    key = f"{parameter['in']}.{parameter['name']}"
                    bindings[key] = {"dictionary": "text", "probability": EDGE_PROBABILITY}
    return bindings


def _config(authorization: str, document: dict[str, Any]) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "headers": {"Authorization": authorization},
            "dictionaries": {name: {"values": values} for name, values in EDGES.items()},
            "parameters": _text_parameters(document),
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # The admin's bearer token is sent with every call; none is generated.
                "with-security-parameters": False,
                # No example database to replay from: the fixed seed reproduces a failure.
                "database": "none",
                "dictionaries": {
                    "string": {"dictionary": "text", "probability": EDGE_PROBABILITY},
                    "integer": {"dictionary": "integer", "probability": EDGE_PROBABILITY},
                },
            },
            # Chains of calls (create, then use) would make the run depend on what it created.
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
            },
        }
    )


def test_no_operation_answers_a_server_error_or_an_undocumented_status(
    fuzz_app: Litestar,
) -> None:
    admin, document = _admin_and_document(fuzz_app)
    schema = schemathesis.openapi.from_asgi(
        "/docs/openapi.json", fuzz_app, config=_config(admin.authorization, document)
    )
    schema.hook(_spare_own_account(admin))
    problems: list[str] = []
    calls = 0
    stop = "not finished"
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            calls += len(event.recorder.interactions)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info
                        problems.append(
                            f"{event.recorder.label}: {failure.failure.title}\n"
                            f"{failure.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            problems.append(f"the run stopped: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            stop = event.stop_reason.value
    print(f"{calls} calls in {time.monotonic() - started:.1f} s, {stop}")
    if problems:
        pytest.fail("\n\n".join(sorted(set(problems))), pytrace=False)
