"""Transactions: writes staged during a block, applied all together or not at all."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._keys import DELETE, MISSING, check_key
from .errors import NotAMappingError, TransactionClosedError

if TYPE_CHECKING:
    from .schema import SchemaRegistry
    from .storage import TransactionReads


class Transaction:
    """A staging area over one scope's state, used inside ``with ...transaction() as tx``.

    Behaves like a dict of the scope's state: ``tx[k]``, ``tx.get(k)``,
    ``tx[k] = v``, ``del tx[k]``, ``k in tx``, ``tx.update(m)``. Raises
    TransactionClosedError when used after its block.
    """

    def __init__(self, reads: TransactionReads, schema: SchemaRegistry | None = None) -> None:
        # ``reads`` says how staged changes land: into a session's memory with an undo
        # log, or as one versioned store commit.
        self._schema = schema if schema is not None and schema.fields else None
        self._state: TransactionReads | None = reads
        self._staged: dict[str, Any] = {}

    def _checked(self, key: str, value: Any) -> Any:
        # Validated when staged, so the error points at the line that wrote it.
        return value if self._schema is None else self._schema.check(key, value)

    def _open_state(self) -> TransactionReads:
        if self._state is None:
            raise TransactionClosedError()
        return self._state

    def get(self, key: str, default: Any = None) -> Any:
        """The staged or stored value of ``key``, or ``default``."""
        state = self._open_state()
        key = check_key(key)
        if key in self._staged:
            value = self._staged[key]
            return default if value is DELETE else value
        try:
            return state[key]
        except KeyError:
            return default

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, MISSING) is not MISSING

    def set(self, key: str, value: Any) -> None:
        """Stage ``key = value``."""
        self._open_state()
        key = check_key(key)
        self._staged[key] = self._checked(key, value)

    __setitem__ = set

    def delete(self, key: str) -> bool:
        """Stage the deletion of ``key``; True if it is set now."""
        present = key in self
        self._staged[check_key(key)] = DELETE
        return present

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def update(self, updates: Mapping[str, Any]) -> None:
        """Stage several writes."""
        self._open_state()
        if not isinstance(updates, Mapping):
            raise NotAMappingError(updates, "Transaction.update")
        checked = {check_key(k): v for k, v in updates.items()}
        checked = {k: self._checked(k, v) for k, v in checked.items()}
        self._staged.update(checked)

    def staged(self) -> Iterator[str]:
        """The keys this transaction will write or delete."""
        return iter(list(self._staged))

    def commit(self) -> None:
        """Apply the staged changes (called by the ``with`` block on success)."""
        state = self._open_state()
        try:
            state.commit(list(self._staged.items()))
        finally:
            self.close()

    def close(self) -> None:
        """Discard the staged changes."""
        self._state = None
        self._staged = {}
