"""A database outage on demand: a database of its own, migrated, whose connections the test
cuts (every open one terminated, new ones refused) and restores, as a restart or a failover
does to the clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.conftest import admin_execute, migrated_database


class Outage:
    def __init__(self, server_url: str, url: str) -> None:
        self.server_url = server_url
        self.url = url
        # The path's last part, before any query (the embedded server's URL has `?host=/...`).
        self.name = url.partition("?")[0].rsplit("/", 1)[1]

    async def cut(self) -> None:
        await admin_execute(
            self.server_url,
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'",
        )

    async def restore(self) -> None:
        await admin_execute(self.server_url, f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@contextlib.asynccontextmanager
async def outage_database(server_url: str) -> AsyncIterator[Outage]:
    """A migrated database of its own (dropped at the end) that the test may cut and restore."""
    manager = migrated_database(server_url, "ekimo_outage")
    url = await asyncio.to_thread(manager.__enter__)
    outage = Outage(server_url, url)
    try:
        yield outage
    finally:
        await outage.restore()
        await asyncio.to_thread(manager.__exit__, None, None, None)
