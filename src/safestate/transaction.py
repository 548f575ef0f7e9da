"""Transactions: writes staged during a block, applied all together or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from .errors import NotAMappingError, TransactionClosedError

if TYPE_CHECKING:
    from .schema import SchemaRegistry

_DELETE: Any = object()
_MISSING: Any = object()


def apply_changes(
    state: MutableMapping[str, Any], changes: Iterable[tuple[str, Any]]
) -> Callable[[], None]:
    """Apply (key, value-or-_DELETE) pairs; if one fails, undo the others and re-raise.

    A write can fail half-way through: e.g. Streamlit refuses to set a key whose
    widget was already drawn in this run. The undo log restores what was there.
    Writes go first and deletes last: deleting a present key cannot fail, and a
    deleted widget key could not be restored as the widget's again. Returns a
    function that undoes the whole change, for a caller whose next step fails.
    """
    ordered = sorted(changes, key=lambda change: change[1] is _DELETE)  # stable
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
            if value is _DELETE:
                if had:
                    del state[key]
            else:
                state[key] = value
            log.append((key, had, old))
    except BaseException:
        undo()
        raise
    return undo


class Transaction:
    """A staging area over one scope's state, used inside ``with ...transaction() as tx``.

    Behaves like a dict of the scope's state: ``tx[k]``, ``tx.get(k)``,
    ``tx[k] = v``, ``del tx[k]``, ``k in tx``, ``tx.update(m)``. Raises
    TransactionClosedError when used after its block.
    """

    def __init__(
        self,
        state: MutableMapping[str, Any],
        schema: SchemaRegistry | None = None,
        apply: Callable[[list[tuple[str, Any]]], object] | None = None,
    ) -> None:
        from ._scope import check_key

        self._check_key = check_key
        # How staged changes land: into ``state`` by default; a persisted scope passes
        # its own (one versioned store commit).
        self._apply = apply
        self._schema = schema if schema is not None and schema.fields else None
        self._state: MutableMapping[str, Any] | None = state
        self._staged: dict[str, Any] = {}

    def _checked(self, key: str, value: Any) -> Any:
        # Validated when staged, so the error points at the line that wrote it.
        return value if self._schema is None else self._schema.check(key, value)

    def _open_state(self) -> MutableMapping[str, Any]:
        if self._state is None:
            raise TransactionClosedError()
        return self._state

    def get(self, key: str, default: Any = None) -> Any:
        """The staged or stored value of ``key``, or ``default``."""
        state = self._open_state()
        key = self._check_key(key)
        if key in self._staged:
            value = self._staged[key]
            return default if value is _DELETE else value
        try:
            return state[key]
        except KeyError:
            return default

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING) is not _MISSING

    def set(self, key: str, value: Any) -> None:
        """Stage ``key = value``."""
        self._open_state()
        key = self._check_key(key)
        self._staged[key] = self._checked(key, value)

    __setitem__ = set

    def delete(self, key: str) -> bool:
        """Stage the deletion of ``key``; True if it is set now."""
        present = key in self
        self._staged[self._check_key(key)] = _DELETE
        return present

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def update(self, updates: Mapping[str, Any]) -> None:
        """Stage several writes."""
        self._open_state()
        if not isinstance(updates, Mapping):
            raise NotAMappingError(updates, "Transaction.update")
        checked = {self._check_key(k): v for k, v in updates.items()}
        checked = {k: self._checked(k, v) for k, v in checked.items()}
        self._staged.update(checked)

    def staged(self) -> Iterator[str]:
        """The keys this transaction will write or delete."""
        return iter(list(self._staged))

    def commit(self) -> None:
        """Apply the staged changes (called by the ``with`` block on success)."""
        state = self._open_state()
        try:
            changes = list(self._staged.items())
            if self._apply is None:
                apply_changes(state, changes)
            else:
                self._apply(changes)
        finally:
            self.close()

    def close(self) -> None:
        """Discard the staged changes."""
        self._state = None
        self._staged = {}
