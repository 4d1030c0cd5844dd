"""WebSocket `/api/v1/live`: events pushed to authenticated subscribers, filtered by topic and role.

A topic is an event family (`alarm`, `incident`, …). Which roles may see which topic is a table,
`TOPIC_ROLES`; families not in it are for administrators only. The hub reads the log's live tail
once and fans out to every client through a bounded queue: a client too slow to keep up loses
events and is told so (`{"type": "gap"}`), it never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from safecity.api.deps import ROLE_RULE_ATTR, get_services
from safecity.api.metrics import Metrics
from safecity.bus import EventLog
from safecity.events import Event
from safecity.security import ALL_ROLES, OPERATIONS, OVERSIGHT, InvalidToken, Principal, Role

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

FIELD = frozenset({Role.FIELD_UNIT})
TOPIC_ROLES: dict[str, frozenset[Role]] = {
    "alarm": frozenset(OPERATIONS),
    "incident": frozenset(OPERATIONS) | FIELD,
    "unit": frozenset(OPERATIONS) | FIELD,
    "sensor": frozenset(OPERATIONS),
    "alert": frozenset(OPERATIONS) | FIELD,
    "camera": frozenset(OPERATIONS),
    "drone": frozenset(OPERATIONS),
    "protection": frozenset({Role.SUPERVISOR, Role.DISPATCHER}),
    "system": frozenset(ALL_ROLES),
    "audit": frozenset(OVERSIGHT),
}


# Topics where a field unit sees only what concerns its own unit (the event's `unit_id`).
UNIT_SCOPED_TOPICS = frozenset({"incident", "unit"})


def may_see(role: Role, topic: str) -> bool:
    return role == Role.ADMIN or role in TOPIC_ROLES.get(topic, frozenset())


def concerns(principal: Principal, event: Event) -> bool:
    """Field units get their own unit's events only; everyone else what their topics carry."""
    if principal.role != Role.FIELD_UNIT or event.family not in UNIT_SCOPED_TOPICS:
        return True
    return principal.unit_id is not None and event.payload.get("unit_id") == principal.unit_id


@dataclass(eq=False)
class LiveClient:
    principal: Principal
    queue: asyncio.Queue[bytes]
    topics: set[str] = field(default_factory=set)
    lost: int = 0
    batch: bool = False  # the client takes `{"type": "batch", "messages": [...]}` frames


class LiveHub:
    def __init__(self, events: EventLog, metrics: Metrics, queue_size: int = 1000) -> None:
        self._events = events
        self._metrics = metrics
        self._queue_size = queue_size
        self._clients: set[LiveClient] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name="live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add(self, principal: Principal) -> LiveClient:
        client = LiveClient(principal, asyncio.Queue(self._queue_size))
        self._clients.add(client)
        self._metrics.live_clients.set(len(self._clients))
        return client

    def remove(self, client: LiveClient) -> None:
        self._clients.discard(client)
        self._metrics.live_clients.set(len(self._clients))

    async def _pump(self) -> None:
        while True:
            try:
                async for event in self._events.live():
                    self.publish(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live tail failed; resubscribing")
                await asyncio.sleep(1.0)

    def publish(self, event: Event) -> None:
        topic = event.family
        message: bytes | None = None
        for client in self._clients:
            if topic not in client.topics or not concerns(client.principal, event):
                continue
            if message is None:
                message = orjson.dumps({"type": "event", "topic": topic, "event": event.model_dump(mode="json")})
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                client.lost += 1
                self._metrics.live_dropped.inc()


def _token_from(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("access_token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


async def _live_rule() -> None:  # marker for the authorization test: every role may connect
    return None


setattr(_live_rule, ROLE_RULE_ATTR, frozenset(ALL_ROLES))


@router.websocket("/api/v1/live")
async def live(websocket: WebSocket) -> None:
    """Query `access_token=…` (browsers cannot set headers) or `Authorization: Bearer`; then send
    `{"type": "subscribe", "topics": [...]}`; events arrive as `{"type": "event", ...}`, or, with
    `batch=1` in the query (or `"batch": true` in the subscribe message), as
    `{"type": "batch", "messages": [event, ...]}` frames."""
    services = get_services(websocket)  # type: ignore[arg-type]
    token = _token_from(websocket)
    try:
        if not token:
            raise InvalidToken("missing token")
        principal = await services.security.principal_from_access_token(token)
    except InvalidToken as exc:
        await websocket.close(code=4401, reason=f"unauthorized: {exc}"[:120])
        return
    await websocket.accept()
    hub: LiveHub = websocket.app.state.live_hub
    client = hub.add(principal)
    client.batch = websocket.query_params.get("batch") in ("1", "true")
    initial = websocket.query_params.get("topics")
    if initial:
        await _subscribe(websocket, client, initial.split(","))
    sender = asyncio.create_task(_send_loop(websocket, client))
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                message: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                await websocket.send_json({"type": "error", "detail": "messages must be JSON"})
                continue
            if not isinstance(message, dict):
                await websocket.send_json({"type": "error", "detail": "messages must be JSON objects"})
                continue
            kind = message.get("type")
            topics = message.get("topics", [])
            if kind == "subscribe" and isinstance(topics, list):
                if message.get("batch") is True:
                    client.batch = True
                await _subscribe(websocket, client, [str(t) for t in topics])
            elif kind == "unsubscribe" and isinstance(topics, list):
                client.topics.difference_update(str(t) for t in topics)
                await websocket.send_json({"type": "unsubscribed", "topics": sorted(client.topics)})
            elif kind == "ping":
                await websocket.send_json({"type": "pong"})
            else:
                await websocket.send_json({"type": "error", "detail": f"unknown message type {kind!r}"})
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def _subscribe(websocket: WebSocket, client: LiveClient, topics: list[str]) -> None:
    wanted = {t.strip() for t in topics if t.strip()}
    granted = {t for t in wanted if may_see(client.principal.role, t)}
    client.topics |= granted
    await websocket.send_json(
        {"type": "subscribed", "topics": sorted(client.topics), "denied": sorted(wanted - granted)}
    )


MAX_BATCH = 500


async def _send_loop(websocket: WebSocket, client: LiveClient) -> None:
    """One frame per event; or, for clients that asked for batches, everything queued in one frame,
    so a burst costs the hub (and the client) one send instead of hundreds."""
    reported = 0
    while True:
        message = await client.queue.get()
        if client.lost != reported:
            await websocket.send_text(orjson.dumps({"type": "gap", "lost": client.lost - reported}).decode())
            reported = client.lost
        if not client.batch:
            await websocket.send_text(message.decode())
            continue
        messages = [message]
        while len(messages) < MAX_BATCH and not client.queue.empty():
            messages.append(client.queue.get_nowait())
        frame = b'{"type":"batch","messages":[' + b",".join(messages) + b"]}"
        await websocket.send_text(frame.decode())
