"""The tests on the cluster of their own (`own_cluster`): each uses a fresh database in it,
never the run's, so the suite's per-test clean-up of the run's database is not theirs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_database() -> None:
    """Overrides the suite's: these tests use a database of their own, not the run's."""


@pytest.fixture(autouse=True)
def reset_login_rate_limit() -> None:
    """Overrides the suite's (which needs the run's database)."""


@pytest.fixture
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "pycache"
