"""Roles and the named role sets that routes declare (`requires(OPERATIONS)`)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"  # alarm receiving centre operator
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"  # shift supervisor: overrides, reports
    ADMIN = "admin"  # users, configuration
    FIELD_UNIT = "field_unit"  # a crew's tablet, bound to one unit
    AUDITOR = "auditor"  # reads the audit log, changes nothing


OPERATIONS: frozenset[Role] = frozenset({Role.OPERATOR, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})
"""The situation centre: alarms, incidents, units, video, sensors."""

SUPERVISION: frozenset[Role] = frozenset({Role.SUPERVISOR, Role.ADMIN})
"""Overrides and reports above a single operator's desk."""

ADMINISTRATION: frozenset[Role] = frozenset({Role.ADMIN})
"""User management and configuration."""

OVERSIGHT: frozenset[Role] = frozenset({Role.ADMIN, Role.AUDITOR})
"""Reading the audit log."""

FIELD: frozenset[Role] = frozenset({Role.FIELD_UNIT, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})
"""Unit status and positions: the crews themselves and whoever dispatches them."""

ALL_ROLES: frozenset[Role] = frozenset(Role)
"""Any authenticated user."""
