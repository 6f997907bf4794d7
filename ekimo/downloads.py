"""Streamed downloads that fail before they start.

Once a streamed answer has sent its status line, an error can only cut the download short: the
client gets a 200 and a truncated file. `started` makes the first chunk before the handler
returns, so whatever would fail making it (the query, the database) fails while the answer can
still be a problem document.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator


async def started(chunks: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
    """`chunks` with its first chunk already made. A generator that starts by running its
    query, and yields only after, has then shown that the query works."""
    first = await anext(chunks, b"")
    return _resumed(first, chunks)


async def _resumed(first: bytes, rest: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()
