"""The fault tests' own PostgreSQL (see `restartable_pg`), for the modules that ask for it."""

from tests.faults.restartable_pg import own_cluster, own_database

__all__ = ["own_cluster", "own_database"]
