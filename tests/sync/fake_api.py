"""A real HTTP server standing in for the external API, whose answers a test programs.

A minimal HTTP/1.1 server on asyncio (127.0.0.1, a free port), so it can also do what a
framework would not: hang past the client's timeout or drop the connection mid-request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

REASONS = {200: "OK", 201: "Created", 401: "Unauthorized", 403: "Forbidden", 422: "Unprocessable"}


@dataclass
class Reply:
    """What the next POST /products gets instead of the normal answer."""

    status: int = 201
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # answer this late (past the client's timeout: a timeout)
    drop: bool = False  # close the connection without answering
    hook: Callable[[], Awaitable[None]] | None = None  # runs while the request is in flight
    accept: bool = False  # after the hook/delay, answer normally (and record the delivery)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeApi:
    def __init__(self, *, expires_in: int = 1800) -> None:
        self.faults: deque[Reply] = deque()
        self.auth_faults: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.delivered: list[dict[str, Any]] = []  # every product of every 2xx answer
        self.reject_barcodes: set[str] = set()
        self.tokens: set[str] = set()
        self.auth_calls = 0
        self.expires_in = expires_in
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def product_posts(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/products"]

    def delivered_barcodes(self) -> list[str]:
        return [str(p["barcode"]) for p in self.delivered]

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    break
                self.requests.append(request)
                if not await self._answer(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, path, headers, body)

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.path == "/auth":
            fault = self.auth_faults.popleft() if self.auth_faults else None
            if fault is not None and not fault.accept:
                return await self._fault(fault, writer)
            self.auth_calls += 1
            token = secrets.token_hex(8)
            self.tokens.add(token)
            body = {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in}
            return await self._send(writer, 200, body)
        if request.path != "/products" or request.method != "POST":
            return await self._send(writer, 404, {"detail": "not found"})
        fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            if fault.hook is not None:
                await fault.hook()
            if not fault.accept:
                return await self._fault(fault, writer)
            if fault.delay:
                await asyncio.sleep(fault.delay)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return await self._send(writer, 401, {"detail": "invalid token"})
        products: list[dict[str, Any]] = request.json()["products"]
        for index, product in enumerate(products):
            if str(product["barcode"]) in self.reject_barcodes:
                detail = {"detail": f"products[{index}].barcode {product['barcode']} refused"}
                return await self._send(writer, 422, detail)
        self.delivered.extend(products)
        return await self._send(writer, 201, {"received": len(products)})

    async def _fault(self, fault: Reply, writer: asyncio.StreamWriter) -> bool:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            writer.transport.abort()
            return False
        return await self._send(writer, fault.status, fault.body or {}, fault.headers)

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> bool:
        payload = json.dumps(body).encode()
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        return True
