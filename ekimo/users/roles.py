"""Roles and what each may do: the one table every route's permission is checked against.

Kept free of the web and database stacks: the CLI checks roles before it opens either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    RECEIVER = "receiver"


ROLES = tuple(role.value for role in Role)


@dataclass(frozen=True)
class Permission:
    """What a route needs: the roles that have it, and how a refusal names it."""

    name: str
    roles: frozenset[Role]
    # "importing needs the editor role": what the caller tried, and the least role that may.
    refusal: str

    def allows(self, role: Role) -> bool:
        return role in self.roles

    @property
    def least_role(self) -> Role:
        for role in (Role.RECEIVER, Role.VIEWER, Role.EDITOR, Role.ADMIN):
            if role in self.roles:
                return role
        raise ValueError(f"{self.name}: no role has it")


_READERS = frozenset({Role.VIEWER, Role.EDITOR, Role.ADMIN})
_WRITERS = frozenset({Role.EDITOR, Role.ADMIN})

READ_CATALOG = Permission("read_catalog", _READERS, "reading the catalog needs the viewer role")
READ_IMPORTS = Permission(
    "read_imports", _READERS, "reading the import history needs the viewer role"
)
READ_SYNC = Permission("read_sync", _READERS, "reading the sync state needs the viewer role")
IMPORT = Permission("import", _WRITERS, "importing needs the editor role")
RUN_SYNC = Permission("run_sync", _WRITERS, "starting a sync needs the editor role")
RECEIVE = Permission(
    "receive",
    frozenset({Role.RECEIVER, Role.EDITOR, Role.ADMIN}),
    "sending products needs the receiver or the editor role",
)
SIGNED_IN = Permission("signed_in", frozenset(Role), "logging out needs a signed-in account")
OWN_ACCOUNT = Permission(
    "own_account", _READERS, "managing your own account and keys needs the viewer role"
)
MANAGE_ACCOUNTS = Permission(
    "manage_accounts", frozenset({Role.ADMIN}), "managing accounts needs the admin role"
)
READ_AUDIT = Permission(
    "read_audit", frozenset({Role.ADMIN}), "reading the audit trail needs the admin role"
)
READ_HEALTH_DETAILS = Permission(
    "read_health_details",
    frozenset({Role.ADMIN}),
    "the detailed health (verbose=true) needs the admin role",
)

# The order of power for "a key's role may not exceed its creator's": a receiver only sends
# products, which an editor may do too.
_RANK = {Role.RECEIVER: 1, Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


def may_grant(granter: Role, role: Role) -> bool:
    """Whether an account of role `granter` may give `role` to a key it creates."""
    if granter is Role.ADMIN:
        return True
    if granter is Role.RECEIVER:
        return role is Role.RECEIVER
    if granter is Role.VIEWER:
        return role is Role.VIEWER
    return _RANK[role] <= _RANK[granter]
