"""The one envelope every event travels in, and the registry of typed payloads.

Kinds are `<family>.<event>` in the past tense (`alarm.received`, `unit.assigned`); the family picks the
bus subject `safecity.<family>.<event>` and, on JetStream, the stream. Ids are UUIDv7, so sorting by id
sorts by creation time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import orjson
import uuid6
from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class EventError(ValueError):
    """An event that does not fit the envelope or its kind's payload type."""


class Location(BaseModel):
    """A WGS84 position (EPSG:4326), degrees; accuracy in metres when known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    alt: float | None = None
    accuracy_m: float | None = Field(default=None, ge=0)


class Payload(BaseModel):
    """Base of every typed payload; subclasses set KIND and are registered by `register`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    KIND: ClassVar[str]


P = TypeVar("P", bound=Payload)
_REGISTRY: dict[str, type[Payload]] = {}


def register(cls: type[P]) -> type[P]:
    """Class decorator: make `cls` the payload type of `cls.KIND`."""
    kind = cls.KIND
    if not KIND_PATTERN.match(kind):
        raise EventError(f"bad event kind {kind!r}: want family.event in lower snake case")
    existing = _REGISTRY.get(kind)
    if existing is not None and existing is not cls:
        raise EventError(f"event kind {kind!r} already registered by {existing.__qualname__}")
    _REGISTRY[kind] = cls
    return cls


def payload_type(kind: str) -> type[Payload] | None:
    return _REGISTRY.get(kind)


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)


def new_event_id() -> str:
    return str(uuid6.uuid7())


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """The envelope. `payload` is stored as plain JSON; `typed()` gives the registered model back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_event_id)
    kind: str
    source: str = Field(min_length=1, max_length=200)
    occurred_at: datetime
    received_at: datetime = Field(default_factory=_utcnow)
    location: Location | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    dedup_key: str | None = Field(
        default=None,
        max_length=500,
        description="idempotency key: a second event with the same key is not stored again",
    )

    @field_validator("kind")
    @classmethod
    def _kind_shape(cls, kind: str) -> str:
        if not KIND_PATTERN.match(kind):
            raise ValueError(f"bad event kind {kind!r}: want family.event in lower snake case")
        return kind

    @field_validator("occurred_at", "received_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value.astimezone(UTC)

    @classmethod
    def of(
        cls,
        payload: Payload,
        *,
        source: str,
        occurred_at: datetime,
        received_at: datetime | None = None,
        location: Location | None = None,
        dedup_key: str | None = None,
        event_id: str | None = None,
    ) -> Event:
        """Wrap a typed payload; the payload's class decides the kind."""
        extra: dict[str, Any] = {}
        if received_at is not None:
            extra["received_at"] = received_at
        if event_id is not None:
            extra["id"] = event_id
        return cls(
            kind=type(payload).KIND,
            source=source,
            occurred_at=occurred_at,
            location=location,
            payload=payload.model_dump(mode="json"),
            dedup_key=dedup_key,
            **extra,
        )

    @property
    def family(self) -> str:
        return self.kind.split(".", 1)[0]

    @property
    def subject(self) -> str:
        return f"safecity.{self.kind}"

    def typed(self) -> Payload:
        """The payload as its registered model; raises EventError if the kind is unknown or invalid."""
        cls = _REGISTRY.get(self.kind)
        if cls is None:
            raise EventError(f"no payload type registered for {self.kind!r}")
        try:
            return cls.model_validate(self.payload)
        except ValueError as exc:
            raise EventError(f"payload of {self.kind!r} does not validate: {exc}") from exc

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        try:
            return cls.model_validate(orjson.loads(data))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise EventError(f"not an event envelope: {exc}") from exc


def family_of(kind: str) -> str:
    return kind.split(".", 1)[0]
