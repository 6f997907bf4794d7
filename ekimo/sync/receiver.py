"""ekimo as the external API: `POST /products` validates every item, then one bulk upsert.

Accepts the sender's shape (decimal strings, ISO 8601) and the prototype's (barcode as an
integer, numbers, extra fields ignored). The latest `last_updated` wins; received products are
stored as already synced, so a sync to itself ends with nothing pending and no echo.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ekimo.bounds import INSTANT_RULE, in_range
from ekimo.products import writes
from ekimo.sync.errors import InvalidPayload, ItemError, TooManyItems

MAX_ITEMS = 10_000
MAX_REPORTED_ERRORS = 20
_BARCODE = re.compile(r"[0-9]{1,14}")
_CENT = Decimal("0.01")
_MILLI = Decimal("0.001")
_PRICE_LIMIT = Decimal(10) ** 12  # Numeric(14, 2): 12 digits before the point
_QUANTITY_LIMIT = Decimal(10) ** 12  # Numeric(15, 3): 12 digits before the point


class Row(msgspec.Struct):
    """One valid product as PostgreSQL receives it (decimal strings, an aware time)."""

    barcode: str
    name: str
    price: str
    quantity: str
    last_updated: datetime


# The canonical shape: what ekimo sends. Decoding checks the types and that the time is aware;
# `_canonical_values` checks the rest a column at a time.
class _CanonicalRow(msgspec.Struct, forbid_unknown_fields=False):
    barcode: str
    name: str
    price: str
    quantity: str
    last_updated: Annotated[datetime, msgspec.Meta(tz=True)]


# One value each: digits only, a name without surrounding whitespace (1 to 255 characters, no
# NUL), plain decimals within the column's precision. None of them can match a newline.
_ONE_BARCODE = r"[0-9]{1,14}"
_ONE_NAME = r"[^\s\x00](?:[^\n\x00]{0,253}[^\s\x00])?"
_ONE_PRICE = r"[0-9]{1,12}(?:\.[0-9]{1,2})?"
_ONE_QUANTITY = r"[0-9]{1,12}(?:\.[0-9]{1,3})?"


def _column(one: str) -> re.Pattern[str]:
    return re.compile(rf"(?:{one}\n)*{one}")


_BARCODES, _NAMES, _PRICES, _QUANTITIES = map(
    _column, (_ONE_BARCODE, _ONE_NAME, _ONE_PRICE, _ONE_QUANTITY)
)


def _all_match(column: re.Pattern[str], values: list[str]) -> bool:
    """Every value matches: one regex pass over the newline-joined column (no Python loop)."""
    joined = "\n".join(values)
    # A value holding a newline would pass as two: the count rules that out.
    return joined.count("\n") == len(values) - 1 and column.fullmatch(joined) is not None


def _canonical_values(rows: list[_CanonicalRow]) -> bool:
    barcodes = [r.barcode for r in rows]
    return (
        _all_match(_BARCODES, barcodes)
        and _all_match(_NAMES, [r.name for r in rows])
        and _all_match(_PRICES, [r.price for r in rows])
        and _all_match(_QUANTITIES, [r.quantity for r in rows])
        and len(set(barcodes)) == len(barcodes)
        # Stored beyond year 9999 in UTC, a product could never be read back.
        and all(in_range(r.last_updated) for r in rows)
    )


class _Canonical(msgspec.Struct, forbid_unknown_fields=False):
    products: list[_CanonicalRow]


class IncomingProduct(msgspec.Struct, forbid_unknown_fields=False):
    barcode: str | int
    name: str
    price: str | int | float
    quantity: str | int | float
    last_updated: str


class IncomingProducts(msgspec.Struct, forbid_unknown_fields=False):
    products: list[IncomingProduct]


class _CountOnly(msgspec.Struct, forbid_unknown_fields=False):
    products: list[msgspec.Raw]


class ReceiveResult(msgspec.Struct):
    received: int
    created: int
    updated: int
    unchanged: int
    stale: int


_PATH = re.compile(r"^\$\.products\[(\d+)\](?:\.(\w+))?")


def _decode_error(exc: msgspec.DecodeError) -> ItemError:
    message = str(exc)
    text_part, sep, path = message.rpartition(" - at `")
    if not sep:
        return ItemError(None, None, message)
    match = _PATH.match(path.rstrip("`"))
    if match is None:
        return ItemError(None, None, f"{text_part} at {path.rstrip('`')}")
    index, field = int(match.group(1)), match.group(2)
    missing = re.match(r"Object missing required field `(\w+)`", text_part)
    if field is None and missing:
        return ItemError(index, missing.group(1), "required field missing")
    return ItemError(index, field, text_part)


def _number(value: str | int | float, unit: Decimal, limit: Decimal, places: int) -> Decimal:
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    if number < 0:
        raise ValueError(f"{value!r} is negative; must be 0 or more")
    if number >= limit:
        raise ValueError(f"{value!r} is too large (at most 12 digits before the point)")
    if number.quantize(unit) != number:
        raise ValueError(f"{value!r} has more than {places} decimal places")
    return number


def _stamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date-time (e.g. 2025-01-31T12:00:00Z)"
        ) from None
    if not in_range(parsed):
        raise ValueError(f"{value!r} {INSTANT_RULE}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)  # naive means UTC
    return parsed.astimezone(UTC)


def parse(body: bytes) -> list[Row] | list[_CanonicalRow]:
    """Decode and validate everything; raises `InvalidPayload` or `TooManyItems`.

    The canonical shape (what ekimo sends) is checked a column at a time; anything else, or an
    error to name, goes through `_parse_items`, which names the item and field."""
    try:
        rows = msgspec.json.decode(body, type=_Canonical).products
    except msgspec.DecodeError:
        return _parse_items(body)  # another shape, or an error to name
    if len(rows) > MAX_ITEMS:
        raise TooManyItems(len(rows), MAX_ITEMS)
    if rows and not _canonical_values(rows):
        return _parse_items(body)  # names the item and field (or accepts, e.g. " 1.5 ")
    return rows


def _parse_items(body: bytes) -> list[Row]:
    """The general path: any accepted shape, each item validated in Python."""
    try:
        count = len(msgspec.json.decode(body, type=_CountOnly).products)
    except msgspec.DecodeError as exc:
        raise InvalidPayload([_decode_error(exc)]) from None
    if count > MAX_ITEMS:
        raise TooManyItems(count, MAX_ITEMS)
    try:
        payload = msgspec.json.decode(body, type=IncomingProducts)
    except msgspec.DecodeError as exc:
        raise InvalidPayload([_decode_error(exc)]) from None

    errors: list[ItemError] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(payload.products):
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        field = "barcode"
        try:
            raw_barcode = item.barcode
            barcode = str(raw_barcode) if isinstance(raw_barcode, int) else raw_barcode.strip()
            if not _BARCODE.fullmatch(barcode):
                raise ValueError(f"{raw_barcode!r} must be 1 to 14 digits")
            if barcode in seen:
                raise ValueError(
                    f"{barcode} appears twice (also products[{seen[barcode]}]); "
                    "send each barcode once per request"
                )
            field = "name"
            name = item.name.strip()
            if not 1 <= len(name) <= 255:
                raise ValueError("must be 1 to 255 characters (after trimming spaces)")
            if "\x00" in name:
                raise ValueError("contains a NUL character, which PostgreSQL text cannot hold")
            field = "price"
            price = _number(item.price, _CENT, _PRICE_LIMIT, 2)
            field = "quantity"
            quantity = _number(item.quantity, _MILLI, _QUANTITY_LIMIT, 3)
            field = "last_updated"
            stamp = _stamp(item.last_updated)
        except ValueError as exc:
            errors.append(ItemError(index, field, str(exc)))
            continue
        seen[barcode] = index
        rows.append(Row(barcode, name, str(price), str(quantity), stamp))
    if errors:
        raise InvalidPayload(errors)
    return rows


async def receive(session: AsyncSession, body: bytes) -> ReceiveResult:
    """Validate all of `body`, then apply it in one transaction under the shared products lock."""
    rows = parse(body)
    received = len(rows)
    if received == 0:
        return ReceiveResult(received=0, created=0, updated=0, unchanged=0, stale=0)
    # Only the five columns: unknown fields were dropped by the decode.
    as_json = msgspec.json.encode(rows).decode()
    created, updated, stale = await writes.apply_received(session, as_json)
    await session.commit()
    return ReceiveResult(
        received=received,
        created=created,
        updated=updated,
        unchanged=received - created - updated - stale,
        stale=stale,
    )
