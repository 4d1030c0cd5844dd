"""The audit chain, for auditors: list and verify. Reading it is itself audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from safecity.api.deps import ServicesDep, allow, client_address
from safecity.security import OVERSIGHT, Principal

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Oversight = Annotated[Principal, allow(OVERSIGHT)]


class AuditRecordOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    resource: str
    outcome: str
    client: str | None
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str


class ProblemOut(BaseModel):
    seq: int
    kind: str
    message: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    problems: list[ProblemOut]


@router.get("")
async def list_audit(
    request: Request,
    services: ServicesDep,
    principal: Oversight,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: str | None = None,
    action: str | None = None,
) -> list[AuditRecordOut]:
    records = await services.audit.list(after_seq=after_seq, limit=limit, actor=actor, action=action)
    await services.audit.append(
        principal.username, principal.role.value, "audit.read", "audit_log",
        client=client_address(request), detail={"after_seq": after_seq, "limit": limit, "actor": actor,
                                                "action": action, "returned": len(records)},
    )
    return [AuditRecordOut.model_validate(r, from_attributes=True) for r in records]


@router.get("/verify")
async def verify_audit(services: ServicesDep, principal: Oversight) -> VerifyOut:
    report = await services.audit.verify()
    return VerifyOut(
        ok=report.ok,
        checked=report.checked,
        problems=[ProblemOut(seq=p.seq, kind=p.kind, message=p.message) for p in report.problems],
    )
