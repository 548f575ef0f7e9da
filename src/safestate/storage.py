"""The one interface every place state lives implements, and the in-memory implementation.

A scope (the calling session, a worker's handle, ``shared``) holds its lock and calls
a ``Storage``: read a key, write one, apply several changes at once, read a key with
the version it was read at, and say whether a read-modify-write of a key must read
outside the lock, in a turn (a stored key: the read is a store round trip). The
scope never asks what kind of storage it has. ``LocalStorage`` keeps values in a
mapping (a session's ``st.session_state``, a worker's view of it, ``shared``'s
dict); ``persistence.PersistentView`` keeps declared keys in a store as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from . import _compat
from ._keys import DELETE

if TYPE_CHECKING:
    from .live import LiveUpdates

Change = tuple[str, Any]


class TransactionReads(Protocol):
    """What a transaction reads from, and how its staged changes land."""

    def __getitem__(self, key: str) -> Any:
        """The value of ``key`` as the transaction sees it. Raises KeyError when unset."""

    def commit(self, changes: list[Change]) -> None:
        """Apply the transaction's changes, all or none."""


class Storage(Protocol):
    """Where a scope's values live. Called with the scope's lock held."""

    #: Whether reads carry versions (a store): False means every key is in this process's
    #: memory, so a read-modify-write is a read and a write under the scope's lock.
    versioned: bool

    def __getitem__(self, key: str) -> Any:
        """The value of ``key``. Raises KeyError when unset, StoreUnavailable when unreadable."""

    def __setitem__(self, key: str, value: Any) -> None:
        """Set one key."""

    def __delitem__(self, key: str) -> None:
        """Delete one key. Raises KeyError when unset."""

    def apply(self, changes: Iterable[Change], expected_version: int | None = None) -> None:
        """Apply (key, value-or-DELETE) pairs all together or, if one fails, none.

        Raises VersionConflict when ``expected_version`` is given and is not the version now.
        """

    def read(self, key: str, default: Any) -> tuple[Any, int | None]:
        """``key``'s value (``default`` when unset) and the version read (None: unversioned)."""

    def turn(self, key: str | None) -> AbstractContextManager[None] | None:
        """The turn a read-modify-write of ``key`` (None: of any key, as a transaction) reads
        in, outside the lock; None: under it."""

    def transaction_reads(self) -> TransactionReads:
        """The mapping a transaction reads, whose ``commit`` applies its changes."""

    def user_keys(self) -> list[str]:
        """The keys set, without reading their values."""

    def snapshot(self) -> dict[str, Any]:
        """Every key and value (a copy)."""

    def clear(self) -> None:
        """Remove every key."""


def apply_changes(
    state: MutableMapping[str, Any] | Storage, changes: Iterable[Change]
) -> Callable[[], None]:
    """Apply (key, value-or-DELETE) pairs; if one fails, undo the others and re-raise.

    A write can fail half-way through: e.g. Streamlit refuses to set a key whose
    widget was already drawn in this run. The undo log restores what was there.
    Writes go first and deletes last: deleting a present key cannot fail, and a
    deleted widget key could not be restored as the widget's again. Returns a
    function that undoes the whole change, for a caller whose next step fails.
    """
    ordered = sorted(changes, key=lambda change: change[1] is DELETE)  # stable
    log: list[tuple[str, bool, Any]] = []

    def undo() -> None:
        for key, had, old in reversed(log):
            if had:
                state[key] = old
            else:
                with contextlib.suppress(KeyError):
                    del state[key]

    try:
        for key, value in ordered:
            try:
                old, had = state[key], True
            except KeyError:
                old, had = None, False
            if value is DELETE:
                if had:
                    del state[key]
            else:
                state[key] = value
            log.append((key, had, old))
    except BaseException:
        undo()
        raise
    return undo


class LocalStorage(Mapping[str, Any]):
    """Values in a mapping in this process: every read-modify-write happens under the lock.

    It is its own transaction view: a transaction reads the mapping and applies its
    changes with an undo log.
    """

    __slots__ = ("_state",)
    versioned = False

    def __init__(self, state: Any) -> None:
        self._state = state  # a SessionState, a WorkerStateView or a dict

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __delitem__(self, key: str) -> None:
        del self._state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.user_keys())

    def __len__(self) -> int:
        return len(self.user_keys())

    def apply(self, changes: Iterable[Change], expected_version: int | None = None) -> None:
        apply_changes(self._state, changes)

    def read(self, key: str, default: Any) -> tuple[Any, int | None]:
        try:
            return self._state[key], None
        except KeyError:
            return default, None

    def turn(self, key: str | None) -> AbstractContextManager[None] | None:
        return None

    def transaction_reads(self) -> LocalStorage:
        return self

    #: A transaction's changes, all or none.
    commit = apply

    def user_keys(self) -> list[str]:
        return list(_compat.snapshot(self._state))

    def snapshot(self) -> dict[str, Any]:
        return _compat.snapshot(self._state)

    def clear(self) -> None:
        for key in self.user_keys():
            with contextlib.suppress(KeyError):
                del self._state[key]


class DictStorage(dict[str, Any]):
    """Values in a plain dict of this process (``shared`` in memory): reads and writes of one
    key are the dict's own, with no call in between; the rest as ``LocalStorage``."""

    __slots__ = ()
    versioned = False

    def apply(self, changes: Iterable[Change], expected_version: int | None = None) -> None:
        apply_changes(self, changes)

    def read(self, key: str, default: Any) -> tuple[Any, int | None]:
        return self.get(key, default), None

    def turn(self, key: str | None) -> AbstractContextManager[None] | None:
        return None

    def transaction_reads(self) -> DictStorage:
        return self

    #: A transaction's changes, all or none.
    commit = apply

    def user_keys(self) -> list[str]:
        return list(self)

    def snapshot(self) -> dict[str, Any]:
        return dict(self)


class WatchedDict(DictStorage):
    """``DictStorage`` whose reads are noted and whose writes rerun the sessions that read
    the key (``shared`` in memory, with live updates: see ``live.LiveUpdates``)."""

    __slots__ = ("_live", "_scope")

    def __init__(self, live: LiveUpdates, scope: str) -> None:
        super().__init__()
        self._live = live
        self._scope = scope

    def __getitem__(self, key: str) -> Any:
        self._live.read(self._scope, key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        self._live.read(self._scope, key)
        return dict.get(self, key, default)

    def read(self, key: str, default: Any) -> tuple[Any, int | None]:
        return dict.get(self, key, default), None  # a read-modify-write's: not noted

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._live.changed(self._scope, (key,))

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._live.changed(self._scope, (key,))

    def apply(self, changes: Iterable[Change], expected_version: int | None = None) -> None:
        changes = list(changes)
        # The dict's own methods: one notice for the whole change, after it all applied.
        apply_changes(_Plain(self), changes)
        self._live.changed(self._scope, [k for k, _ in changes])

    commit = apply

    def clear(self) -> None:
        keys = list(self)
        dict.clear(self)
        self._live.changed(self._scope, keys)


class _Plain(MutableMapping[str, Any]):
    """A ``WatchedDict`` seen through ``dict``'s own methods (no notice per key)."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getitem__(self, key: str) -> Any:
        return dict.__getitem__(self._d, key)

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self._d, key, value)

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self._d, key)

    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self._d)

    def __len__(self) -> int:
        return dict.__len__(self._d)
