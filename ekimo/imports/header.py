"""The header row: which column holds which field, whatever its spelling or order."""

from __future__ import annotations

from ekimo.imports.errors import FileProblem

REQUIRED = ("barcode", "name", "price", "quantity")
OPTIONAL = ("last_updated",)
KNOWN = REQUIRED + OPTIONAL
# The column GET /imports/{id}/errors.csv adds; a fixed errors file is re-uploaded as it is.
ERRORS_CSV_COLUMN = "error"


def _header_key(cell: str) -> str:
    return "_".join(cell.strip().lower().replace("-", " ").split())


def map_header(header: list[str]) -> tuple[dict[str, int], list[str]]:
    """Column positions of the known columns, and warnings (unknown columns)."""
    positions: dict[str, int] = {}
    unknown: list[str] = []
    for index, cell in enumerate(header):
        key = _header_key(cell)
        if key in KNOWN:
            if key in positions:
                raise FileProblem(
                    422, f"the column {key!r} appears twice in the header: keep only one"
                )
            positions[key] = index
        elif key and key != ERRORS_CSV_COLUMN:
            unknown.append(cell.strip())
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        names = ", ".join(missing)
        found = ", ".join(c.strip() for c in header if c.strip()) or "nothing"
        raise FileProblem(
            422,
            f"missing required column{'s' if len(missing) > 1 else ''}: {names} "
            f"(the header must name barcode, name, price and quantity; found: {found})",
        )
    warnings = [f"unknown column ignored: {name}" for name in unknown]
    return positions, warnings
