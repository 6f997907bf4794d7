"""A bare Litestar + asyncpg app answering ekimo's single-product query: the load benchmark's
reference, started by `benchmarks/load.py` with uvicorn on the same database as ekimo.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/db \\
        uvicorn benchmarks.bare_app:app --port 8001 [--workers N]

No ekimo code: no authentication, no ORM, no session. `GET /products/{barcode}` takes a pooled
connection (at most 20, as ekimo's engine: pool 10 + overflow 10), runs one SELECT of the
columns of ekimo's `ProductOut` and answers them as JSON (404 when no product has the barcode);
`GET /health` answers 200 once the pool is open.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Literal

import asyncpg
import msgspec
from litestar import Litestar, get
from litestar.exceptions import NotFoundException

QUERY = """
SELECT p.barcode, p.name, p.price, p.quantity, p.last_updated, p.version,
       coalesce(s.synced_version, p.version) AS synced_version, p.created_at, p.updated_at
FROM products p LEFT JOIN pending_products s ON s.product_id = p.id
WHERE p.barcode = $1
"""


class Product(msgspec.Struct):
    """The fields of ekimo's `ProductOut`, in its order."""

    barcode: str
    name: str
    price: Decimal
    quantity: Decimal
    last_updated: datetime
    version: int
    synced_version: int
    state: Literal["pending", "synced"]
    created_at: datetime
    updated_at: datetime


class _Pool:
    pool: asyncpg.Pool | None = None


@asynccontextmanager
async def _lifespan(_: Litestar) -> AsyncIterator[None]:
    _Pool.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=20)
    try:
        yield
    finally:
        await _Pool.pool.close()
        _Pool.pool = None


@get("/products/{barcode:str}")
async def get_product(barcode: str) -> Product:
    assert _Pool.pool is not None
    row = await _Pool.pool.fetchrow(QUERY, barcode)
    if row is None:
        raise NotFoundException(f"No product has barcode {barcode!r}.")
    return Product(
        barcode=row["barcode"],
        name=row["name"],
        price=row["price"],
        quantity=row["quantity"],
        last_updated=row["last_updated"],
        version=row["version"],
        synced_version=row["synced_version"],
        state="pending" if row["version"] > row["synced_version"] else "synced",
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[get_product, health], lifespan=[_lifespan])
