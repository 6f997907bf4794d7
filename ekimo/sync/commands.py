from __future__ import annotations

from ekimo.console import fail


def sync_command() -> None:
    """Push new or changed products to the external API now."""
    raise fail("not implemented yet")
