"""The raw event log, for administrators and auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from safecity.api.deps import ServicesDep, allow, client_address
from safecity.api.problems import Problem
from safecity.events import KIND_PATTERN, Event
from safecity.security import OVERSIGHT, Principal

router = APIRouter(prefix="/api/v1/events", tags=["events"])


class EventOut(Event):
    offset: int


@router.get("")
async def list_events(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, allow(OVERSIGHT)],
    kind: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    """The last `limit` events (of `kind`), newest last."""
    if kind is not None and not KIND_PATTERN.match(kind):
        raise Problem(422, f"bad event kind {kind!r}")
    stored = await services.events.recent(kind, limit)
    await services.audit.append(
        principal.username, principal.role.value, "events.read", f"events:{kind or '*'}",
        client=client_address(request), detail={"limit": limit, "returned": len(stored)},
    )
    return [EventOut(offset=s.offset, **s.event.model_dump()) for s in stored]
