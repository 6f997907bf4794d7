"""Row validation: cheap string checks; the numbers are parsed by PostgreSQL (COPY, csv).

`RowValidator.batch(rows)` takes `(row_number, cells)` pairs (cells are strings) and returns the
valid rows as CSV text for COPY into the staging table, collecting errors as it goes. The fast
path is a compiled regular expression per field; only a value that fails it goes through the
slow path, which says precisely what is wrong (or normalises a value that is fine after all,
such as `1.50E+2` or `007.5`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TypedDict

from ekimo.bounds import INSTANT_RULE, in_range

MAX_ERRORS_KEPT = 1000
MAX_BARCODE_DIGITS = 14
MAX_NAME_LENGTH = 255
INTEGER_DIGITS = 12
PRICE_DECIMALS = 2
QUANTITY_DECIMALS = 3

_PRICE = re.compile(r"\d{1,12}(?:\.\d{0,2})?|\.\d{1,2}")
_QUANTITY = re.compile(r"\d{1,12}(?:\.\d{0,3})?|\.\d{1,3}")
_BARCODE = re.compile(r"[0-9]{1,14}")
# `YYYY-MM-DDTHH:MM:SS` (or with a space), no zone: naive, so UTC.
_NAIVE_SECONDS = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
# An export prefixes text cells that start with = + - @ with ' (formula injection), and one more
# ' to a cell that starts with 's before such a character; undo it (remove one ').
_FORMULA_ESCAPE = re.compile(r"'+[=+\-@]")


class RowError(TypedDict):
    row: int | None
    column: str | None
    value: str | None
    message: str


class ErrorLog:
    """The first `MAX_ERRORS_KEPT` errors, the total count and the rows that had any."""

    def __init__(self) -> None:
        self.kept: list[RowError] = []
        self.total = 0
        self.rows = 0
        self._last_row: int | None = None
        # The messages of the row that had the latest error (for the rejected rows' file).
        self.row_messages: list[str] = []

    def add(self, row: int | None, column: str | None, value: str | None, message: str) -> None:
        self.total += 1
        if row is None or row != self._last_row:
            self.rows += 1
            self._last_row = row
            self.row_messages = []
        self.row_messages.append(message)
        if len(self.kept) < MAX_ERRORS_KEPT:
            self.kept.append({"row": row, "column": column, "value": value, "message": message})

    @property
    def truncated(self) -> bool:
        return self.total > len(self.kept)


def unescape_text(value: str) -> str:
    if _FORMULA_ESCAPE.match(value):
        return value[1:]
    return value


class RowValidator:
    """Validates rows against the column positions found in the header."""

    def __init__(
        self,
        positions: dict[str, int],
        errors: ErrorLog,
        *,
        decimal_comma: bool = False,
        on_reject: Callable[[int, list[str], list[str]], None] | None = None,
    ) -> None:
        self.barcode_at = positions["barcode"]
        self.name_at = positions["name"]
        self.price_at = positions["price"]
        self.quantity_at = positions["quantity"]
        self.updated_at: int | None = positions.get("last_updated")
        self.width = max(positions.values()) + 1
        self.errors = errors
        self.decimal_comma = decimal_comma
        # Called with (row number, the row's cells as read, its error messages) per rejected row.
        self.on_reject = on_reject
        self.valid = 0
        self.blank = 0

    def batch(self, first_row: int, rows: Iterable[list[str]]) -> str:
        """The valid rows among `rows` as CSV lines: row_no,barcode,name,price,quantity,updated."""
        out: list[str] = []
        append = out.append
        barcode_at, name_at = self.barcode_at, self.name_at
        price_at, quantity_at, updated_at = self.price_at, self.quantity_at, self.updated_at
        width = self.width
        price_ok, quantity_ok, barcode_ok = (
            _PRICE.fullmatch,
            _QUANTITY.fullmatch,
            _BARCODE.fullmatch,
        )
        naive_ok = _NAIVE_SECONDS.fullmatch
        decimal_comma = self.decimal_comma
        on_reject = self.on_reject
        for row_no, cells in enumerate(rows, first_row):
            read = cells
            if len(cells) < width:
                if not any(c.strip() for c in cells):
                    self.blank += 1
                    continue
                cells = cells + [""] * (width - len(cells))
            barcode = cells[barcode_at].strip()
            name = cells[name_at].strip()
            price = cells[price_at].strip()
            quantity = cells[quantity_at].strip()
            updated = cells[updated_at].strip() if updated_at is not None else ""
            if decimal_comma:
                price = price.replace(",", ".")
                quantity = quantity.replace(",", ".")
            ok = True
            if barcode_ok(barcode) is None:
                if not (barcode or name or price or quantity or updated) and not any(
                    c.strip() for c in cells
                ):
                    self.blank += 1
                    continue
                ok = self._barcode_error(row_no, barcode)
            if not name or len(name) > MAX_NAME_LENGTH or name[0] == "'":
                name, name_ok = self._name(row_no, name)
                ok = ok and name_ok
            if price_ok(price) is None:
                price = self._number(row_no, "price", price, PRICE_DECIMALS)
                ok = ok and price is not None
            if quantity_ok(quantity) is None:
                quantity = self._number(row_no, "quantity", quantity, QUANTITY_DECIMALS)
                ok = ok and quantity is not None
            if updated:
                if naive_ok(updated) is not None and _valid_naive(updated):
                    updated = updated + "+00:00"
                else:
                    updated = self._timestamp(row_no, updated)
                    ok = ok and updated is not None
            if ok:
                # Only the name can hold a quote, a delimiter or a line break: always quote it.
                # An empty (unquoted) last_updated is NULL to COPY: the time of the import.
                quoted = name.replace('"', '""')
                append(f'{row_no},{barcode},"{quoted}",{price},{quantity},{updated}\n')
            elif on_reject is not None:
                on_reject(row_no, read, self.errors.row_messages)
        self.valid += len(out)
        return "".join(out)

    # -- slow paths: only for values the fast path refused ----------------------------------
    def _barcode_error(self, row_no: int, barcode: str) -> bool:
        if not barcode:
            message = "barcode is required"
        elif _SCIENTIFIC.fullmatch(barcode):
            message = (
                "barcode is in scientific notation, so digits were lost (the spreadsheet "
                "treated it as a number); format the barcode column as Text and export again"
            )
        elif barcode.isdigit() and barcode.isascii():
            message = f"barcode has {len(barcode)} digits; at most {MAX_BARCODE_DIGITS} allowed"
        elif re.fullmatch(r"\d+\.0+", barcode):
            message = "barcode must be digits only, without a decimal point"
        else:
            message = f"barcode must be 1 to {MAX_BARCODE_DIGITS} digits (0-9), nothing else"
        self.errors.add(row_no, "barcode", barcode, message)
        return False

    def _name(self, row_no: int, name: str) -> tuple[str, bool]:
        name = unescape_text(name)
        if not name:
            self.errors.add(row_no, "name", name, "name is required")
            return name, False
        if len(name) > MAX_NAME_LENGTH:
            self.errors.add(
                row_no,
                "name",
                name[:50] + "…",
                f"name has {len(name)} characters; at most {MAX_NAME_LENGTH} allowed",
            )
            return name, False
        return name, True

    def _number(self, row_no: int, column: str, raw: str, decimals: int) -> str | None:
        """A value the fast pattern refused: normalise it if it is fine, else report why."""
        value = unescape_text(raw).replace(" ", "").replace("\u00a0", "")
        if value.startswith("+"):
            value = value[1:]
        message: str | None = None
        if not value:
            message = f"{column} is required"
        else:
            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
            if number is None or "_" in value:
                message = f"{column} must be a number like 19.99"
                if "," in value:
                    message += " (use a point as the decimal separator, or ; as the delimiter)"
            elif number.is_nan() or number.is_infinite():
                message = f"{column} must be a finite number, not {raw}"
            elif number < 0:
                message = f"{column} must be 0 or more"
            else:
                exponent = number.as_tuple().exponent
                assert isinstance(exponent, int)
                if number != 0 and number.adjusted() >= INTEGER_DIGITS:
                    message = (
                        f"{column} is too large: at most {INTEGER_DIGITS} digits before the point"
                    )
                elif exponent < -decimals and number != number.quantize(
                    Decimal(1).scaleb(-decimals)
                ):
                    message = f"{column} has more than {decimals} digits after the point"
                else:
                    text = format(number.quantize(Decimal(1).scaleb(-decimals)), "f")
                    return text
        self.errors.add(row_no, column, raw, message)
        return None

    def _timestamp(self, row_no: int, raw: str) -> str | None:
        value = unescape_text(raw)
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            self.errors.add(
                row_no,
                "last_updated",
                raw,
                "last_updated must be an ISO 8601 date-time like 2025-07-01T12:00:00 "
                "(no zone means UTC) or 2025-07-01T12:00:00+02:00",
            )
            return None
        if not in_range(moment):
            # An offset can carry a valid ISO 8601 time past year 9999 in UTC: unreadable.
            self.errors.add(row_no, "last_updated", raw, f"last_updated {INSTANT_RULE}")
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.isoformat()


def _valid_naive(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def float_text(value: float) -> str:
    """A float from a spreadsheet cell as the decimal the user typed (19.99, not 19.98999…).

    15 significant digits (what Excel shows) drop the binary noise; whole numbers below 1e15
    (808080808080.0) print without a point; nan and inf print as such (row errors later).
    """
    text = f"{value:.15g}"
    return "0" if text == "-0" else text
