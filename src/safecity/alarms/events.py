"""Typed payloads of the alarm family (`safecity.alarm.*`) and the incident request it emits."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from safecity.events import Payload, register


@register
class SignalReceived(Payload):
    """A panel reported an event; appended by the receiver before it ACKs."""

    KIND = "alarm.signal_received"

    account: str
    protocol: str  # "SIA-DCS" | "ADM-CID"
    code_system: str  # "sia" | "contact_id"
    code: str  # e.g. "BA" or "E130"
    zone: str | None = None
    partition: str | None = None
    user: str | None = None
    category: str
    priority: int = Field(ge=1, le=4)
    is_restore: bool
    is_alarm: bool
    description: str
    sequence: int
    receiver: str | None = None
    line: str
    encrypted: bool
    panel_time: datetime | None = None
    transport: str  # "tcp" | "udp"
    peer: str | None = None


@register
class LinkTestReceived(Payload):
    """A NULL message: the panel's link test."""

    KIND = "alarm.link_test_received"

    account: str
    sequence: int
    receiver: str | None = None
    line: str
    encrypted: bool
    transport: str
    peer: str | None = None


@register
class CommunicationFailed(Payload):
    KIND = "alarm.communication_failed"

    account: str
    deadline: datetime
    interval_s: int


@register
class CommunicationRestored(Payload):
    KIND = "alarm.communication_restored"

    account: str
    failed_at: datetime | None = None


@register
class AlarmChanged(Payload):
    """A queue item was opened, grew, was claimed, released, escalated or closed."""

    KIND = "alarm.changed"

    alarm_id: str
    account: str
    change: str  # opened | signal | claimed | released | action | escalated | closed
    status: str
    priority: int
    category: str
    code: str
    zone: str | None
    actor: str | None = None
    detail: str | None = None


@register
class IncidentRequested(Payload):
    """The alarm centre asks dispatch for an incident (consumed by the dispatch domain)."""

    KIND = "incident.requested"

    alarm_id: str
    account: str
    account_kind: str
    priority: int
    category: str
    code: str
    zone: str | None
    address: str
    lat: float
    lon: float
    requested_by: str
    note: str = ""


@register
class AccountChanged(Payload):
    """An alarm account was created or changed: receivers refresh their key directory."""

    KIND = "alarm.account_changed"

    account: str
    change: str  # created | updated | deleted
