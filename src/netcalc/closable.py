"""The connections of a server that a new connection may take the place of."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from uvicorn.server import ServerState

if TYPE_CHECKING:
    from netcalc.http_limits import LimitedHttpProtocol


@dataclass
class Closable:
    """The connections of one server that a new one may take the place of,
    each kind oldest first: those that have sent nothing yet, then those
    idle between requests.

    Unused connections go first, so that connections opened and left
    silent, as in a flood, make room for each other rather than push out
    clients between their requests. Kept per server: one process may run
    several, each on its own event loop, and a connection may only be
    closed from its own.
    """

    unused: dict[LimitedHttpProtocol, None] = field(default_factory=dict)
    idle: dict[LimitedHttpProtocol, None] = field(default_factory=dict)

    def take_oldest(self) -> LimitedHttpProtocol | None:
        """The connection to close for a new one, no longer counted here."""
        for kind in (self.unused, self.idle):
            if kind:
                oldest = next(iter(kind))
                del kind[oldest]
                return oldest
        return None

    def forget(self, connection: LimitedHttpProtocol) -> None:
        """`connection` is busy with a request, or closed."""
        self.unused.pop(connection, None)
        self.idle.pop(connection, None)


_CLOSABLE: weakref.WeakKeyDictionary[ServerState, Closable] = (
    weakref.WeakKeyDictionary()
)


def closable_connections(server_state: ServerState) -> Closable:
    """The connections of one server that a new one may take the place of."""
    closable = _CLOSABLE.get(server_state)
    if closable is None:
        closable = _CLOSABLE[server_state] = Closable()
    return closable
