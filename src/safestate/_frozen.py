"""Read-only copies of the values typed state hands out.

``state.cart`` is read under the lock and returned; changing it in place
(``state.cart.append(x)``) would change the session's value with no lock, no
validation and no write to the store, or a copy no one sees. So containers come back
read-only: their in-place methods raise ReadOnlyValueError naming the safe form, and
the augmented assignments (``state.cart += [x]``) build a new value that the write
then checks. Other mutable values (models, dataclasses) come back as deep copies.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, SupportsIndex

from .errors import ReadOnlyValueError

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), decimal.Decimal,
              datetime.date, datetime.time, datetime.timedelta, uuid.UUID, enum.Enum,
              frozenset, range)


def read_only(key: str, value: Any) -> Any:
    """``value`` as typed state hands it out: itself if immutable, else a read-only copy."""
    if isinstance(value, _IMMUTABLE):
        return value
    if type(value) is list or isinstance(value, ReadOnlyList):
        return ReadOnlyList(key, (read_only(key, v) for v in value))
    if type(value) is dict or isinstance(value, ReadOnlyDict):
        return ReadOnlyDict(key, ((k, read_only(key, v)) for k, v in value.items()))
    if type(value) is set or isinstance(value, ReadOnlySet):
        return ReadOnlySet(key, value)
    if type(value) is tuple:
        return tuple(read_only(key, v) for v in value)
    return copy.deepcopy(value)


def writable(value: Any) -> Any:
    """A value to write: read-only containers (nested too) back to plain ones."""
    if isinstance(value, list):
        return [writable(v) for v in value]
    if isinstance(value, dict):
        return {k: writable(v) for k, v in value.items()}
    if isinstance(value, ReadOnlySet):
        return set(value)
    if type(value) is tuple:
        return tuple(writable(v) for v in value)
    return value


def _refuse(method: str) -> Callable[..., NoReturn]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise ReadOnlyValueError(self._key, method)
    refuse.__name__ = method
    return refuse


class ReadOnlyList(list[Any]):
    """A list read through typed state. ``+=`` gives a new list; in-place methods raise."""

    __slots__ = ("_key",)

    def __init__(self, key: str, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self._key = key

    def __iadd__(self, other: Iterable[Any]) -> list[Any]:  # type: ignore[override, misc]
        return [*self, *other]

    def __imul__(self, n: SupportsIndex) -> list[Any]:  # type: ignore[override]
        return list(self) * n

    def __reduce__(self) -> Any:
        return (list, (list(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]

    append = _refuse("append")
    extend = _refuse("extend")
    insert = _refuse("insert")
    remove = _refuse("remove")
    pop = _refuse("pop")
    clear = _refuse("clear")
    sort = _refuse("sort")
    reverse = _refuse("reverse")
    __setitem__ = _refuse("__setitem__")
    __delitem__ = _refuse("__delitem__")


class ReadOnlyDict(dict[Any, Any]):
    """A dict read through typed state. ``|=`` gives a new dict; in-place methods raise."""

    __slots__ = ("_key",)

    def __init__(self, key: str, items: Iterable[tuple[Any, Any]] = ()) -> None:
        super().__init__(items)
        self._key = key

    def __ior__(self, other: Any) -> dict[Any, Any]:  # type: ignore[override, misc]
        return {**self, **dict(other)}

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    __setitem__ = _refuse("__setitem__")
    __delitem__ = _refuse("__delitem__")
    update = _refuse("update")
    pop = _refuse("pop")
    popitem = _refuse("popitem")
    clear = _refuse("clear")
    setdefault = _refuse("setdefault")


class ReadOnlySet(set[Any]):
    """A set read through typed state. ``|=`` and friends give a new set; ``add`` raises."""

    __slots__ = ("_key",)

    def __init__(self, key: str, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self._key = key

    def __ior__(self, other: Any) -> set[Any]:  # type: ignore[override, misc]
        return set(self) | set(other)

    def __iand__(self, other: Any) -> set[Any]:  # type: ignore[override, misc]
        return set(self) & set(other)

    def __isub__(self, other: Any) -> set[Any]:  # type: ignore[override, misc]
        return set(self) - set(other)

    def __ixor__(self, other: Any) -> set[Any]:  # type: ignore[override, misc]
        return set(self) ^ set(other)

    def __reduce__(self) -> Any:
        return (set, (set(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> set[Any]:
        return set(self)

    add = _refuse("add")
    discard = _refuse("discard")
    remove = _refuse("remove")
    pop = _refuse("pop")
    clear = _refuse("clear")
    update = _refuse("update")
    difference_update = _refuse("difference_update")
    intersection_update = _refuse("intersection_update")
    symmetric_difference_update = _refuse("symmetric_difference_update")
