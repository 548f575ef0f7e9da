"""The settings in force: one immutable value, swapped whole by ``configure()``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from . import identity as _identity
from .errors import redact
from .serialization import Format

#: The settings ``configure()`` takes, in its order.
NAMES = ("store", "identity", "ttl", "persist", "secret", "serializer", "query_param", "live",
         "live_interval", "live_exclude")


@dataclass(frozen=True)
class Settings:
    """The settings in force (``safestate.configure()`` returns them)."""

    store: str = "memory://"
    identity: _identity.IdentityMode = "session"
    ttl: float | None = None
    persist: tuple[str, ...] | str = ()
    secret: bytes | None = field(default=None, repr=False)
    serializer: Format = "json"
    query_param: str = "ss"
    #: Whether a change to a shared or persisted key reruns the sessions that read it.
    live: bool = True
    #: At most one such rerun per session per this many seconds.
    live_interval: float = 0.25
    #: Keys whose changes rerun nobody.
    live_exclude: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # The store URL may carry a password (redis://:pw@host, ?password=): masked. The
        # secret is never shown.
        shown = [f"store={redact(self.store)!r}"] + [
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
            if f.name not in ("store", "secret")
        ]
        return f"Settings({', '.join(shown)})"

    def same(self, other: Settings | None) -> bool:
        """Whether ``other`` asks for exactly these settings (configure() then does nothing)."""
        return other is not None and self._key() == other._key()

    def _key(self) -> tuple[Any, ...]:
        ident: object = self.identity
        if callable(ident):
            # A script re-creates its functions on every rerun: the same code is the same
            # setting (configure() refuses callables that capture values).
            code = getattr(ident, "__code__", None)
            ident = (getattr(ident, "__module__", ""), getattr(ident, "__qualname__", ""),
                     getattr(code, "co_code", None), getattr(code, "co_consts", None))
        return (self.store, ident, self.ttl, self.persist, self.secret, self.serializer,
                self.query_param, self.live, self.live_interval, self.live_exclude)
