"""Protocol adapters at the edge; each module that exports `RECEIVER` is discovered here.

Adding a protocol means adding one module with a sans-I/O codec, a small asyncio server and
`RECEIVER = ReceiverSpec(...)`. No central port table: the spec names its own setting.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from safecity.services import Services


class RunningReceiver(Protocol):
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ReceiverSpec:
    name: str
    transports: tuple[str, ...]
    default_port: int | None
    decoder: type | None
    start: Callable[[Services], Awaitable[RunningReceiver]]


def discover() -> list[ReceiverSpec]:
    """Every `RECEIVER` in the modules of this package, by name."""
    specs: list[ReceiverSpec] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "RECEIVER", None)
        if isinstance(spec, ReceiverSpec):
            specs.append(spec)
    return sorted(specs, key=lambda s: s.name)
