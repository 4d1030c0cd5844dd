"""REST routes of the alarm receiving centre: accounts and the operator queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, field_validator

from safecity.alarms.logic import ActionKind, AlarmError, AlarmStateError, Resolution
from safecity.alarms.service import (
    AccountExists,
    AlarmService,
    ConcurrentChange,
    UnknownAccount,
    UnknownAlarm,
)
from safecity.api.deps import ServicesDep, allow, client_address
from safecity.api.problems import Problem
from safecity.security import OPERATIONS, SUPERVISION, Principal
from safecity.services import Services

router = APIRouter(prefix="/api/v1", tags=["alarms"])
Operations = Annotated[Principal, allow(OPERATIONS)]
Supervision = Annotated[Principal, allow(SUPERVISION)]
AccountNumber = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{3,16}$")]


def alarm_service(services: Services) -> AlarmService:
    return services.alarms


class Zone(BaseModel):
    zone: str = Field(max_length=16)
    name: str = Field(max_length=200)
    type: str = Field(default="burglary", max_length=32)


class Contact(BaseModel):
    name: str = Field(max_length=200)
    phone: str = Field(max_length=40)
    role: str = Field(default="keyholder", max_length=40)
    order: int = Field(default=1, ge=1)


class AccountIn(BaseModel):
    number: str = Field(pattern=r"^[0-9A-Fa-f]{3,16}$")
    kind: Literal["apartment", "facility", "building_panic_button", "fire_panel"]
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=300)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    key_hex: str | None = Field(default=None, pattern=r"^([0-9A-Fa-f]{32}|[0-9A-Fa-f]{48}|[0-9A-Fa-f]{64})$")
    link_test_interval_s: int | None = Field(default=None, ge=0, le=7 * 86400)
    clock_offset_s: int = Field(default=0, ge=-14 * 3600, le=14 * 3600)
    contract_status: Literal["active", "suspended", "ended"] = "active"
    zones: list[Zone] = Field(default_factory=list, max_length=512)
    contacts: list[Contact] = Field(default_factory=list, max_length=32)
    notes: str = Field(default="", max_length=4000)

    @field_validator("number")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class AccountPatch(BaseModel):
    """Only the fields given change; `key_hex: null` removes encryption."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=300)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    key_hex: str | None = Field(default=None, pattern=r"^([0-9A-Fa-f]{32}|[0-9A-Fa-f]{48}|[0-9A-Fa-f]{64})$")
    link_test_interval_s: int | None = Field(default=None, ge=0, le=7 * 86400)
    clock_offset_s: int | None = Field(default=None, ge=-14 * 3600, le=14 * 3600)
    contract_status: Literal["active", "suspended", "ended"] | None = None
    zones: list[Zone] | None = Field(default=None, max_length=512)
    contacts: list[Contact] | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=4000)


class AccountOut(BaseModel):
    number: str
    kind: str
    name: str
    address: str
    lat: float
    lon: float
    encrypted: bool
    link_test_interval_s: int
    clock_offset_s: int
    contract_status: str
    zones: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    notes: str
    last_seen_at: datetime | None
    link_failed_at: datetime | None


def _account_out(row: Any) -> AccountOut:
    data = {name: getattr(row, name) for name in AccountOut.model_fields if name != "encrypted"}
    return AccountOut(encrypted=row.key_hex is not None, **data)


class AlarmOut(BaseModel):
    id: str
    account: str
    code: str
    zone: str | None
    priority: int
    status: str
    category: str
    received_at: datetime
    last_signal_at: datetime
    signal_count: int
    claimed_by: str | None
    incident_requested: bool
    resolution: str | None


def _alarm_out(row: Any) -> AlarmOut:
    return AlarmOut(
        id=row.id, account=row.account, code=row.code, zone=row.zone, priority=row.priority, status=row.status,
        category=row.category, received_at=row.opened_at, last_signal_at=row.last_signal_at,
        signal_count=row.signal_count, claimed_by=row.claimed_by, incident_requested=row.incident_requested,
        resolution=row.resolution,
    )


class SignalOut(BaseModel):
    event_id: str
    code: str
    zone: str | None
    category: str
    priority: int
    is_restore: bool
    description: str
    received_at: datetime


class ActionOut(BaseModel):
    at: datetime
    actor: str
    action: str
    note: str


class AlarmDetail(AlarmOut):
    account_details: AccountOut
    signals: list[SignalOut]
    actions: list[ActionOut]


class ActionIn(BaseModel):
    action: ActionKind
    note: str = Field(default="", max_length=4000)


class CloseIn(BaseModel):
    resolution: Resolution
    note: str = Field(default="", max_length=4000)


class EscalateIn(BaseModel):
    note: str = Field(default="", max_length=4000)


def _problem(exc: AlarmError) -> Problem:
    if isinstance(exc, UnknownAlarm | UnknownAccount):
        return Problem(404, str(exc))
    if isinstance(exc, ConcurrentChange | AlarmStateError | AccountExists):
        return Problem(409, str(exc))
    return Problem(400, str(exc))


@router.post("/alarm-accounts", status_code=201)
async def create_account(body: AccountIn, services: ServicesDep, principal: Supervision) -> AccountOut:
    try:
        row = await alarm_service(services).create_account(
            body.model_dump(mode="json"), principal.username, principal.role.value
        )
    except AlarmError as exc:
        raise _problem(exc) from exc
    return _account_out(row)


@router.patch("/alarm-accounts/{number}")
async def update_account(
    number: AccountNumber, body: AccountPatch, services: ServicesDep, principal: Supervision
) -> AccountOut:
    changes = body.model_dump(mode="json", exclude_unset=True)
    nullable = {"key_hex"}
    if any(v is None for k, v in changes.items() if k not in nullable):
        raise Problem(422, "only key_hex may be set to null")
    try:
        row = await alarm_service(services).update_account(number, changes, principal.username, principal.role.value)
    except AlarmError as exc:
        raise _problem(exc) from exc
    return _account_out(row)


@router.get("/alarm-accounts")
async def list_accounts(
    services: ServicesDep, principal: Operations, after: str = "", limit: int = 500
) -> list[AccountOut]:
    rows = await alarm_service(services).list_accounts(limit=max(1, min(limit, 5000)), after=after.upper())
    return [_account_out(r) for r in rows]


@router.get("/alarm-accounts/{number}")
async def get_account(number: AccountNumber, services: ServicesDep, principal: Operations) -> AccountOut:
    try:
        return _account_out(await alarm_service(services).get_account(number))
    except AlarmError as exc:
        raise _problem(exc) from exc


@router.get("/alarms")
async def open_alarms(services: ServicesDep, principal: Operations) -> list[AlarmOut]:
    """Open alarms, life safety first, oldest first within a priority."""
    return [_alarm_out(r) for r in await alarm_service(services).open_alarms()]


@router.get("/alarms/{alarm_id}")
async def alarm_detail(
    alarm_id: str, request: Request, services: ServicesDep, principal: Operations
) -> AlarmDetail:
    service = alarm_service(services)
    try:
        row, signals, actions = await service.get_alarm(alarm_id)
        account = await service.get_account(row.account)
    except AlarmError as exc:
        raise _problem(exc) from exc
    await services.audit.append(principal.username, principal.role.value, "alarm.read", f"alarm:{alarm_id}",
                                client=client_address(request))
    return AlarmDetail(
        **_alarm_out(row).model_dump(),
        account_details=_account_out(account),
        signals=[SignalOut.model_validate(s, from_attributes=True) for s in signals],
        actions=[ActionOut.model_validate(a, from_attributes=True) for a in actions],
    )


@router.post("/alarms/{alarm_id}/claim")
async def claim(alarm_id: str, services: ServicesDep, principal: Operations, take_over: bool = False) -> AlarmOut:
    if take_over and principal.role.value not in ("supervisor", "admin"):
        raise Problem(403, "only a supervisor may take over an alarm another operator works")
    try:
        row = await alarm_service(services).claim(alarm_id, principal.username, principal.role.value,
                                                  take_over=take_over)
    except AlarmError as exc:
        raise _problem(exc) from exc
    return _alarm_out(row)


@router.post("/alarms/{alarm_id}/release")
async def release(alarm_id: str, services: ServicesDep, principal: Operations) -> AlarmOut:
    try:
        return _alarm_out(await alarm_service(services).release(alarm_id, principal.username, principal.role.value))
    except AlarmError as exc:
        raise _problem(exc) from exc


@router.post("/alarms/{alarm_id}/actions")
async def add_action(alarm_id: str, body: ActionIn, services: ServicesDep, principal: Operations) -> AlarmOut:
    try:
        row = await alarm_service(services).record_action(
            alarm_id, principal.username, principal.role.value, body.action, body.note
        )
    except AlarmError as exc:
        raise _problem(exc) from exc
    return _alarm_out(row)


@router.post("/alarms/{alarm_id}/escalate")
async def escalate(alarm_id: str, body: EscalateIn, services: ServicesDep, principal: Operations) -> AlarmOut:
    """Ask dispatch for an incident (`incident.requested` on the log)."""
    try:
        row = await alarm_service(services).escalate(alarm_id, principal.username, principal.role.value, body.note)
    except AlarmError as exc:
        raise _problem(exc) from exc
    return _alarm_out(row)


@router.post("/alarms/{alarm_id}/close")
async def close(alarm_id: str, body: CloseIn, services: ServicesDep, principal: Operations) -> AlarmOut:
    try:
        row = await alarm_service(services).close(
            alarm_id, principal.username, principal.role.value, body.resolution, body.note
        )
    except AlarmError as exc:
        raise _problem(exc) from exc
    return _alarm_out(row)
