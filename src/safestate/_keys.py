"""What every layer says about keys: the one key check, the one sentinel, the one has-key test."""

from __future__ import annotations

from typing import Any, Final

from .errors import EmptyKeyError, InvalidKeyError


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: "No value": a default that cannot be confused with anything a user stores (None included).
MISSING: Final[Any] = _Sentinel("MISSING")
#: A staged deletion in a list of (key, value) changes.
DELETE: Final[Any] = _Sentinel("DELETE")


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty str. Raises InvalidKeyError, EmptyKeyError."""
    if type(key) is str and key:
        return key
    if not isinstance(key, str):
        raise InvalidKeyError(key)
    if not key:
        raise EmptyKeyError()
    return key


def has_key(state: Any, key: str) -> bool:
    """Whether ``key`` is set in a mapping-like state (one read; no lock needed for a dict)."""
    try:
        state[key]
    except KeyError:
        return False
    return True
