"""Every statement that writes `products`: the import's MERGE (and a dry run's count of what
it would do), the receiver's upsert and the sync's version marking. Other domains call these;
none of them writes the table itself."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

# The import paths use asyncpg alone; only the receiver and the sync need SQLAlchemy.
if TYPE_CHECKING:
    from sqlalchemy import TextClause
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# Every write to `products` first takes `pg_advisory_xact_lock(PRODUCTS_WRITE_LOCK)`, before it
# locks any row: an import exclusive, a received batch and the sync's marking shared.
# - An import's MERGE locks rows in whatever order its plan meets them (no sort of a million
#   rows): the exclusive lock keeps every other writer out meanwhile, and imports queue.
# - The shared holders run together, so they lock rows in one order, barcode COLLATE "C" (the
#   same whatever the database's collation): two of them can wait for each other, never in a
#   cycle.
# Each writer takes the lock only for its write: reading and staging a file happen before.
PRODUCTS_WRITE_LOCK = 0x656B696D6F01


async def lock_for_import(conn: Any) -> None:
    """Take the write lock exclusively on an asyncpg connection, until its transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PRODUCTS_WRITE_LOCK)


# When an imported row `s` changes the stored product `p`: a missing last_updated keeps the
# stored one. The MERGE and the dry run's count share it.
_CHANGES = """(p.name, p.price, p.quantity, p.last_updated)
        IS DISTINCT FROM (s.name, s.price, s.quantity, coalesce(s.last_updated, p.last_updated))"""


def merge_into_products(source: str) -> str:
    """The one upsert rule of every import path: `source` (a table or a parenthesised query
    with barcode, name, price, quantity, last_updated) merged into `products`, `$1` = now.

    New barcodes are inserted at version 1; a real change bumps `version` and `updated_at`;
    identical values (a missing last_updated keeps the stored one) change nothing. Run it
    through `write_counted`, which also queues what it wrote for the sync.
    """
    return f"""
MERGE INTO products AS p
USING {source} AS s ON p.barcode = s.barcode
WHEN MATCHED AND {_CHANGES}
    THEN UPDATE SET name = s.name, price = s.price, quantity = s.quantity,
        last_updated = coalesce(s.last_updated, $1), version = p.version + 1, updated_at = $1
WHEN NOT MATCHED THEN
    INSERT (barcode, name, price, quantity, last_updated, version, created_at, updated_at)
    VALUES (s.barcode, s.name, s.price, s.quantity, coalesce(s.last_updated, $1), 1, $1, $1)
"""  # noqa: S608 (source is one of our own staging tables or queries, never user input)


async def count_changes(conn: Any, source: str) -> tuple[int, int] | None:
    """What `merge_into_products(source)` would do, written nowhere and without the write lock
    (a dry run's answer): (created, updated), or None when `source` holds a barcode twice, which
    the MERGE refuses. A plain read: writers go on meanwhile, and nothing is left to vacuum."""
    if await conn.fetchval(
        f"SELECT EXISTS (SELECT FROM {source} AS s GROUP BY barcode HAVING count(*) > 1)"  # noqa: S608 (our own table or query)
    ):
        return None
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE p.barcode IS NULL) AS created,"  # noqa: S608 (our own table or query)
        f" count(*) FILTER (WHERE p.barcode IS NOT NULL AND {_CHANGES}) AS updated"
        f" FROM {source} AS s LEFT JOIN products AS p ON p.barcode = s.barcode"
    )
    return int(row["created"]), int(row["updated"])


def insert_new_products(source: str) -> str:
    """The MERGE's insert without its join, for a `source` whose barcodes are all new (a first
    import, rows appended): a known barcode raises a unique violation. `$1` = now. Run it
    through `write_new`."""
    return f"""
INSERT INTO products (barcode, name, price, quantity, last_updated, version, created_at,
    updated_at)
SELECT barcode, name, price, quantity, coalesce(last_updated, $1), 1, $1, $1 FROM {source} s
"""  # noqa: S608 (source is one of our own staging tables or queries, never user input)


# Every product an import wrote waits for the sync. The import's `now` marks them (its
# `updated_at`, read through that column's index; the exclusive lock keeps other writers out):
# at the new version, acknowledged at the one before unless already pending (which keeps its
# own acknowledged version).
_RECORD_PENDING = """
INSERT INTO pending_products (product_id, barcode, version, synced_version)
SELECT id, barcode, version, version - 1 FROM products WHERE updated_at = $1
ON CONFLICT (product_id) DO UPDATE SET version = EXCLUDED.version
"""

# The catalog's size in pages: what a count(*) of it reads.
_CATALOG_PAGES = "SELECT pg_relation_size('products') / current_setting('block_size')::bigint"
_CATALOG_COUNT = "SELECT count(*) FROM products"
# An index probe per staged row costs about what a count(*) reads in a page or two: the probes
# are cheaper for up to this many staged rows per page of the catalog, the counts beyond.
PROBES_PER_PAGE = 2


async def write_counted(
    conn: Any, statement: str, now: datetime, barcodes: str, staged: int
) -> tuple[int, int]:
    """Run an import's write (`statement`, `$1` = now), under the exclusive lock: (created,
    updated). `barcodes`: a table or parenthesised query of the `barcode` of each of the
    `staged` rows it writes.

    A successful write inserts exactly the rows whose barcode is not in the catalog (a barcode
    twice fails it), and nobody else writes meanwhile: those are counted before the write by an
    index probe each, unless the file is large beside the catalog; then the catalog is counted
    before and after the write, as that costs less.
    """
    if staged <= PROBES_PER_PAGE * await conn.fetchval(_CATALOG_PAGES):
        created: int = await conn.fetchval(
            f"SELECT count(*) FROM {barcodes} AS s"  # noqa: S608 (our own table or query)
            " WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.barcode = s.barcode)"
        )
        touched = _tag_count(await conn.execute(statement, now))
    else:
        before: int = await conn.fetchval(_CATALOG_COUNT)
        touched = _tag_count(await conn.execute(statement, now))
        created = await conn.fetchval(_CATALOG_COUNT) - before
    if touched:
        await conn.execute(_RECORD_PENDING, now)
    return created, touched - created


async def write_new(conn: Any, statement: str, now: datetime) -> int:
    """Run an import's insert of new products (`insert_new_products`, `$1` = now) under the
    exclusive lock: how many it created. Each is pending, never synced: recorded from what the
    insert returns, in the same statement."""
    queued = (
        f"WITH inserted AS ({statement} RETURNING id, barcode) "  # noqa: S608 (our own SQL)
        "INSERT INTO pending_products (product_id, barcode, version, synced_version) "
        "SELECT id, barcode, 1, 0 FROM inserted"
    )
    return _tag_count(await conn.execute(queued, now))


def _tag_count(status: str) -> int:
    # asyncpg answers with the command tag, e.g. "MERGE 1000", "INSERT 0 1000".
    return int(status.rsplit(" ", 1)[-1])


# Receivers take PRODUCTS_WRITE_LOCK shared: they exclude imports (which take it exclusive) but
# not each other, so a sender's concurrent batches are applied in parallel. Overlapping
# receivers and markings cannot deadlock: each locks its rows in barcode order (ORDER BY below),
# and ON CONFLICT judges `last_updated` against the latest committed row, so the latest still
# wins; only the stale/unchanged split of such overlapping requests may be off.
#
# Received products are stored as synced: the write clears their pending rows, locked in
# product id order as the sync's marking locks them.
#
# Counts come from the snapshot before the write (stale) and from what the write returned. Only
# the items not written can be stale, so only those are looked up (a hashed NOT IN against
# what was written): a sync of new or changed products costs no lookup beyond the upsert's own.
UPSERT = """
    WITH incoming AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json))
            AS t(barcode text, name text, price numeric, quantity numeric,
                 last_updated timestamptz)
    ),
    written AS (
        INSERT INTO products AS p (barcode, name, price, quantity, last_updated,
                                   version, created_at, updated_at)
        SELECT barcode, name, price, quantity, last_updated, 1, now(), now() FROM incoming
        ORDER BY barcode COLLATE "C"
        ON CONFLICT (barcode) DO UPDATE
        SET name = EXCLUDED.name, price = EXCLUDED.price, quantity = EXCLUDED.quantity,
            last_updated = EXCLUDED.last_updated, version = p.version + 1, updated_at = now()
        WHERE EXCLUDED.last_updated >= p.last_updated
          AND (p.name, p.price, p.quantity, p.last_updated)
              IS DISTINCT FROM
              (EXCLUDED.name, EXCLUDED.price, EXCLUDED.quantity, EXCLUDED.last_updated)
        RETURNING p.id, p.barcode, (xmax = 0) AS created
    ),
    pending AS MATERIALIZED (
        SELECT s.product_id FROM pending_products s JOIN written w ON s.product_id = w.id
        ORDER BY s.product_id
        FOR UPDATE OF s
    ),
    cleared AS (
        DELETE FROM pending_products s USING pending WHERE s.product_id = pending.product_id
    ),
    stale AS (
        -- The correlated lookup reads the statement's snapshot: the rows as they were before.
        SELECT count(*) AS n FROM incoming i
        WHERE i.barcode NOT IN (SELECT w.barcode FROM written w)
          AND i.last_updated < (SELECT p.last_updated FROM products p WHERE p.barcode = i.barcode)
    )
    SELECT (SELECT count(*) FILTER (WHERE created) FROM written),
           (SELECT count(*) FILTER (WHERE NOT created) FROM written),
           (SELECT n FROM stale)
    """


async def apply_received(session: AsyncSession, rows_json: str) -> tuple[int, int, int]:
    """Upsert received products (a JSON array of the five columns) under the shared write lock:
    (created, updated, stale). The caller commits."""
    await session.execute(
        _statement("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": PRODUCTS_WRITE_LOCK}
    )
    created, updated, stale = (await session.execute(_statement(UPSERT), {"rows": rows_json})).one()
    return int(created), int(updated), int(stale)


# Exactly the versions sent: a product changed while in flight keeps its newer version pending
# (the import that changed it raised the pending row's version). One statement, for the sync's
# autocommit connection, under the shared write lock (imports, which write pending rows, wait),
# locking the pending rows in product id order as a receiver locks them. Its commit does not
# wait for the disk (`synchronous_commit` off for this statement's transaction alone): a mark
# lost in a crash of PostgreSQL itself only sends those products again, and the receiver finds
# them unchanged; waiting for each flush held the sync back.
MARK_SYNCED = """
    WITH gate AS MATERIALIZED (
        SELECT pg_advisory_xact_lock_shared(:key), set_config('synchronous_commit', 'off', true)
    ),
    sent AS MATERIALIZED (
        SELECT s.product_id
        FROM gate, pending_products AS s
        JOIN unnest(CAST(CAST(:ids AS text) AS bigint[]), CAST(CAST(:versions AS text) AS bigint[]))
            AS v(id, version) ON s.product_id = v.id
        -- Also as an array: the batch's rows by the primary key, not a scan of every pending.
        WHERE s.product_id = ANY(CAST(CAST(:ids AS text) AS bigint[])) AND s.version = v.version
        ORDER BY s.product_id
        FOR UPDATE OF s
    )
    DELETE FROM pending_products AS s USING sent WHERE s.product_id = sent.product_id
    """


@cache
def _statement(sql: str) -> TextClause:
    from sqlalchemy import text

    return text(sql)


async def mark_synced(conn: AsyncConnection, ids: str, versions: str) -> None:
    """Mark the versions the external API acknowledged (ids and versions as array literals)."""
    parameters = {"key": PRODUCTS_WRITE_LOCK, "ids": ids, "versions": versions}
    await conn.execute(_statement(MARK_SYNCED), parameters)
