"""A body over the limit gets its 413 problem document in every client: also in those that
write the whole body before reading the answer (Python's urllib), which used to get "Connection
reset by peer" when ekimo answered and closed with the rest of the body unread."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from ekimo import uploads
from ekimo.sync.controller import MAX_RECEIVE_BODY
from tests.conftest import PASSWORD, register_and_login
from tests.faults.ekimo_process import bytecode_cached, served

MIB = 1024 * 1024
LIMIT_MB = 1
# Far more than the kernel's socket buffers take in on their own (with a few megabytes over,
# the old early answer got through too), and within the drain bound of twice the limit + 64 MiB.
UPLOAD_SIZE = 21 * MIB
RECEIVE_SIZE = MAX_RECEIVE_BODY + 4 * MIB
TRIES = 3

Api = tuple[str, dict[str, str]]


@pytest.fixture
def api(
    cli_env: dict[str, str], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """A real `ekimo serve` (uvicorn, sockets) with MAX_UPLOAD_MB=1, and an admin's headers."""
    env = {
        **cli_env,
        "MAX_UPLOAD_MB": str(LIMIT_MB),
        "EKIMO_QUEUE_NAME": cli_env["EKIMO_QUEUE_NAME"] + "-413",
    }
    with served(bytecode_cached(env, tmp_path_factory.getbasetemp() / "pycache"), tmp_path) as api:
        with httpx.Client(base_url=api.url) as http:
            username = f"admin{secrets.token_hex(3)}"
            account = {"username": username, "password": PASSWORD}
            assert http.post("/users", json=account).status_code == 201
            token = http.post("/auth", data=account).json()["access_token"]
        yield api.url, {"Authorization": f"Bearer {token}"}


def multipart(size: int) -> tuple[str, list[bytes]]:
    """A multipart body whose `file` is `size` bytes, as its content type and its chunks."""
    boundary = secrets.token_hex(16)
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=big.csv\r\n"
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    chunks = [head, *([b"1;x;1;1;\n" * (MIB // 9)] * (size // (MIB // 9 * 9)))]
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", chunks


def urllib_answer(request: urllib.request.Request) -> tuple[int, str, dict[str, Any]]:
    """What urllib reads back: status, content type, JSON; a reset connection fails the test."""
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (http://127.0.0.1)
            return response.status, response.headers["content-type"], json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], json.load(error)


def assert_413(answer: tuple[int, str, dict[str, Any]], detail: str) -> None:
    status, content_type, document = answer
    assert status == 413, document
    assert content_type.startswith("application/problem+json")
    assert document["status"] == 413
    assert detail in document["detail"]


def test_urllib_gets_the_413_of_an_oversized_upload(api: Api) -> None:
    url, headers = api
    content_type, chunks = multipart(UPLOAD_SIZE)
    body = b"".join(chunks)
    for _ in range(TRIES):
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1)
            url + "/products",
            data=body,
            method="PUT",
            headers={**headers, "Content-Type": content_type},
        )
        assert_413(urllib_answer(request), "MAX_UPLOAD_MB")


def test_urllib_gets_the_413_of_an_oversized_chunked_upload(api: Api) -> None:
    """No Content-Length: the multipart parser finds the file too big, then the rest drains."""
    url, headers = api
    content_type, chunks = multipart(UPLOAD_SIZE)
    for _ in range(TRIES):
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1)
            url + "/products",
            data=iter(chunks),
            method="PUT",
            headers={**headers, "Content-Type": content_type},
        )
        assert_413(urllib_answer(request), "MAX_UPLOAD_MB")


def test_urllib_gets_the_413_of_an_oversized_received_batch(api: Api) -> None:
    url, headers = api
    body = b'{"products": [' + b" " * RECEIVE_SIZE + b"]}"
    for _ in range(TRIES):
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1)
            url + "/products",
            data=body,
            method="POST",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert_413(urllib_answer(request), "16 MB")


def test_httpx_still_gets_the_413(api: Api) -> None:
    url, headers = api
    content_type, chunks = multipart(UPLOAD_SIZE)
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(TRIES):
            upload = http.put(
                "/products", content=b"".join(chunks), headers={"Content-Type": content_type}
            )
            assert upload.status_code == 413, upload.text
            assert "MAX_UPLOAD_MB" in upload.json()["detail"]
            received = http.post(
                "/products",
                content=b'{"products": [' + b" " * RECEIVE_SIZE + b"]}",
                headers={"Content-Type": "application/json"},
            )
            assert received.status_code == 413, received.text
            assert received.headers["connection"] == "close"


def test_a_client_waiting_for_100_continue_gets_the_413_before_sending(api: Api) -> None:
    """As curl does for large bodies: the answer comes at once, and no body is asked for."""
    url, headers = api
    port = int(url.rsplit(":", 1)[1])
    content_type, _ = multipart(UPLOAD_SIZE)
    request = (
        f"PUT /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Authorization: {headers['Authorization']}\r\nContent-Length: {UPLOAD_SIZE}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):  # ekimo closes the connection after the 413
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 Continue" not in answer
    assert b"MAX_UPLOAD_MB" in answer


Receive = Callable[[], Awaitable[dict[str, Any]]]


async def call(app: Litestar, headers: dict[str, str], receive: Receive) -> dict[str, Any]:
    """POST /products straight through ASGI, with `receive` giving the body: the answer."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/products",
        "raw_path": b"/products",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver.local"),
            (b"content-type", b"application/json"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # Plain dicts for the ASGI messages: the typed ones are unions of TypedDicts.
    await asyncio.wait_for(app(scope, receive, send), timeout=20)  # pyright: ignore[reportArgumentType]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": start["status"], "headers": dict(start["headers"]), "body": body}


async def test_a_trickling_body_is_cut_after_the_drain_time(
    app: Litestar, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await register_and_login(client)
    monkeypatch.setattr(uploads, "DRAIN_SECONDS", 0.3)
    headers["Content-Length"] = str(MAX_RECEIVE_BODY + MIB)
    stalled = asyncio.Event()

    async def trickle() -> dict[str, Any]:
        if not stalled.is_set():
            stalled.set()
            return {"type": "http.request", "body": b" " * MIB, "more_body": True}
        await asyncio.Event().wait()  # the client sends nothing more
        raise AssertionError("unreachable")

    started = asyncio.get_running_loop().time()
    answer = await call(app, headers, trickle)
    assert answer["status"] == 413
    assert answer["headers"][b"connection"] == b"close"
    assert 0.3 <= asyncio.get_running_loop().time() - started < 10


async def test_an_endless_body_is_cut_after_the_drain_bound(
    app: Litestar, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await register_and_login(client)
    monkeypatch.setattr(uploads, "DRAIN_MIN_BYTES", MIB)
    sent = 0

    async def endless() -> dict[str, Any]:  # chunked, no Content-Length, never ending
        nonlocal sent
        sent += MIB
        return {"type": "http.request", "body": b" " * MIB, "more_body": True}

    answer = await call(app, headers, endless)
    assert answer["status"] == 413
    # Read to twice the limit (more than the limit + 1 MiB), then no more.
    assert 2 * MAX_RECEIVE_BODY <= sent <= 2 * MAX_RECEIVE_BODY + 2 * MIB
