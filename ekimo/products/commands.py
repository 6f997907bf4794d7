from __future__ import annotations

from pathlib import Path

from ekimo.console import fail


def import_command(file: Path) -> None:
    """Import products from a CSV or XLSX file."""
    raise fail("not implemented yet")
