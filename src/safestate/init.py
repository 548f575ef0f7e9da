"""Declared keys: ``ensure_session_initialized`` and ``typed``."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from . import _compat
from ._frozen import read_only, writable
from ._keys import MISSING, check_key, has_key
from .dependencies import DependencyRegistry, reason_of
from .errors import (
    DependencyNotReady,
    InvalidArgumentError,
    MissingStateError,
    StaleWriteError,
)
from .schema import DeclaredKey

if TYPE_CHECKING:
    from ._scope import Scope
    from .manager import SessionStateManager
    from .transactions import Transaction

M = TypeVar("M")


@dataclass
class InitReport:
    """What ``ensure_session_initialized`` found and did."""

    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)  # optional dependencies that failed

    @property
    def ok(self) -> bool:
        """Nothing required is missing."""
        return not self.missing

    def __bool__(self) -> bool:
        return self.ok


class Initializer:
    """Creates a session's declared keys: defaults and factories, dependencies, typed schemas."""

    def __init__(self, manager: SessionStateManager, dependencies: DependencyRegistry) -> None:
        self._manager = manager
        self._dependencies = dependencies
        #: Keys every session should have: the fields of typed() schemas (they get defaults
        #: in every session, so a missing one was deleted). Pages' own needs are not here.
        self.declared: dict[str, None] = {}

    def ensure(self, keys: Iterable[str] | Mapping[str, Any] | str) -> InitReport:
        """Create what is missing of ``keys`` (names, or name -> default or factory); report.

        Raises InvalidArgumentError for another kind of ``keys``, InvalidKeyError /
        EmptyKeyError, StateValidationError, NoSessionError outside a script run.
        """
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, Iterable) or isinstance(keys, (bytes, bytearray)):
            raise InvalidArgumentError(
                "ensure_session_initialized() takes key names (a list of str, or one str) or "
                "a mapping of name -> default or factory, e.g. "
                f"ensure_session_initialized({{'cart': []}}); got {type(keys).__name__}")
        if isinstance(keys, Mapping):
            return self._init_mapping({check_key(k): v for k, v in keys.items()})
        return self._init_names([check_key(k) for k in keys])

    def _init_mapping(self, items: dict[str, Any]) -> InitReport:
        schema = self._manager.schema
        report = InitReport()
        lock, storage = self._manager.enter("ensure_session_initialized", script_only=True)
        with lock:
            built: list[tuple[str, Any]] = []
            for key, default in items.items():
                if has_key(storage, key):
                    report.present.append(key)
                    continue
                try:
                    value = default() if callable(default) else copy.deepcopy(default)
                except Exception as exc:
                    report.errors[key] = reason_of(exc)
                    report.missing.append(key)
                    continue
                built.append((key, schema.check(key, value)))
            if not report.missing:
                storage.apply(built)
                report.created = [k for k, _ in built]
            else:
                report.missing += [k for k, _ in built]  # not written: all or nothing
        return report

    def _init_names(self, names: list[str]) -> InitReport:
        report = InitReport()
        deps = self._dependencies
        # Presence is read in the session's own state (a stored key that cannot be loaded
        # now counts as missing, not as an error).
        state = self._manager.script_state("ensure_session_initialized")
        with self._manager.session_lock():
            for name in names:
                if deps.is_registered(name):
                    try:
                        deps.get(name, validate=True)
                        report.present.append(name)
                    except DependencyNotReady as exc:
                        # An optional dependency degrades; only a required one is missing.
                        if deps.lookup(name).required:
                            report.missing.append(name)
                        else:
                            report.degraded.append(name)
                        report.errors[name] = exc.reason
                elif has_key(state, name):
                    report.present.append(name)
                else:
                    report.missing.append(name)
        return report

    def typed(self, model: type[M], scope: Scope | None = None) -> M:
        """Declare the session's keys as ``model``'s fields; return attribute access typed as it.

        Raises InvalidArgumentError (a TypeError) for another kind of class,
        SchemaConflictError when a key is already declared with another type.
        """
        keys = self._manager.schema.declare(model)
        self.declared.update(dict.fromkeys(k.name for k in keys))
        proxy: TypedState[M] = TypedState(model, scope or self._manager, keys)
        if scope is not None or self._manager.in_session():
            proxy.initialize()
        return cast("M", proxy)


#: Where a thread's remembered reads note the script run they belong to (not a key name).
_RUN = object()


def _same(a: Any, b: Any) -> bool:
    """Whether two values are the same value (one that cannot say counts as different)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # e.g. an array's elementwise ==
        return False


def _same_stored(field: DeclaredKey, a: Any, b: Any) -> bool:
    """Whether two values are stored alike (their JSON form under the key's type)."""
    try:
        return bool(field.adapter.dump_python(a, mode="json")
                    == field.adapter.dump_python(b, mode="json"))
    except Exception:  # a value with no JSON form (pickle): the plain comparison stands
        return False


class TypedState(Generic[M]):
    """Attribute access to a session's declared keys; ``typed()`` returns one typed as the model.

    Reading an unset key raises MissingStateError; a name that is not a field
    raises AttributeError listing the fields (typos fail loudly). A write of a key this
    thread read (``state.step += 1``) is checked: if another thread, tab or replica
    changed the key since the read, StaleWriteError, and nothing changes. Containers
    read come back read-only (ReadOnlyValueError names the safe form); ``edit()``
    gives a block to change them in.
    """

    __slots__ = ("_keys", "_model", "_reads", "_scope")

    def __init__(self, model: type[M], scope: Scope, keys: list[DeclaredKey]) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_scope", scope)
        object.__setattr__(self, "_keys", {k.name: k for k in keys})
        # Per thread: key -> the value this thread last read and has not written since.
        object.__setattr__(self, "_reads", threading.local())

    def _field(self, name: str) -> DeclaredKey:
        keys: dict[str, DeclaredKey] = object.__getattribute__(self, "_keys")
        if name not in keys:
            model = object.__getattribute__(self, "_model").__name__
            raise AttributeError(
                f"{model} has no field {name!r}; its fields are {', '.join(keys)}. "
                f"Declare it in {model} first."
            )
        return keys[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        field = self._field(name)
        value = self._scope.safe_get(name, MISSING)
        if value is MISSING and field.has_default():
            # First read in this session: give it its default, once, atomically.
            value = self._scope.mutate(
                name, lambda v: field.make_default() if v is MISSING else v, MISSING
            )
        if value is MISSING:
            raise MissingStateError(
                [name], "It has no default in the schema: set it before reading it."
            )
        self._reads_here()[name] = value
        return read_only(name, value)

    def _reads_here(self) -> dict[str, Any]:
        """What this thread read in this script run (a proxy kept across runs forgets
        the last run's reads: a write in a later run is not computed from them)."""
        here = object.__getattribute__(self, "_reads").__dict__
        run = _compat.current_run_marker()
        if here.get(_RUN) is not run:
            here.clear()
            here[_RUN] = run
        return here  # type: ignore[no-any-return]

    def __setattr__(self, name: str, value: Any) -> None:
        self._field(name)
        value = writable(value)
        read = self._reads_here().pop(name, MISSING)
        if read is MISSING:  # a blind write: nothing was read to be stale
            self._scope.safe_set(name, value)  # validated by the scope's schema hook
            return

        field = self._field(name)

        def unless_changed(current: Any) -> Any:
            # The value may come from that read (state.step += 1): if another writer got
            # in between, writing it would undo their change. Equal values are fine: the
            # result is what it would have been. A store gives back what JSON keeps (a
            # tuple as a list): compared as stored too.
            if not (_same(current, read) or _same_stored(field, current, read)):
                raise StaleWriteError([name])
            return value

        self._scope.mutate(name, unless_changed, MISSING)

    @contextmanager
    def edit(self) -> Iterator[M]:
        """A block that reads and changes the declared keys atomically: ``with state.edit()
        as s: s.step += 1; s.cart.append(x)``.

        ``s`` has the model's fields, as mutable copies; the changed ones are written
        together when the block ends, or none if it raises. The scope's lock is held
        for the block (other threads, tabs of the identity in this process, wait); a
        commit from another process in between is taken in if the block did not read
        what it changed, else StaleWriteError with nothing applied. Raises
        StateValidationError for a value of the wrong type, and as ``transaction()``.
        """
        keys: dict[str, DeclaredKey] = object.__getattribute__(self, "_keys")
        model = object.__getattribute__(self, "_model")
        with self._scope.transaction() as tx:
            draft = _Draft(model.__name__, keys, tx)
            yield cast("M", draft)
            draft.stage()
        self._reads_here().clear()  # what this thread read before is not this block's

    def __delattr__(self, name: str) -> None:
        self._field(name)
        self._scope.safe_delete(name)

    def initialize(self) -> list[str]:
        """Give every unset key with a default its default, atomically; return the keys set."""
        keys: dict[str, DeclaredKey] = object.__getattribute__(self, "_keys")
        scope = self._scope
        with scope.transaction() as tx:
            created = []
            for key in keys.values():
                if key.has_default() and key.name not in tx:
                    tx[key.name] = key.make_default()
                    created.append(key.name)
        return created

    def to_model(self) -> M:
        """A snapshot of the declared keys as a model instance (validated)."""
        keys: dict[str, DeclaredKey] = object.__getattribute__(self, "_keys")
        with self._scope.session_lock():
            values = {n: self._scope.safe_get(n, MISSING) for n in keys}
        model = object.__getattribute__(self, "_model")
        return cast("M", model(**{k: v for k, v in values.items() if v is not MISSING}))

    def __repr__(self) -> str:
        model = object.__getattribute__(self, "_model").__name__
        return f"<typed session state {model}>"


class _Draft:
    """The model's fields inside ``TypedState.edit()``: mutable copies, staged at the end."""

    __slots__ = ("_keys", "_model", "_read", "_tx", "_values")

    def __init__(self, model: str, keys: dict[str, DeclaredKey], tx: Transaction) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_tx", tx)
        object.__setattr__(self, "_values", {})  # name -> the block's value
        object.__setattr__(self, "_read", {})  # name -> the value read, to see changes

    def _field(self, name: str) -> DeclaredKey:
        keys: dict[str, DeclaredKey] = object.__getattribute__(self, "_keys")
        if name not in keys:
            model = object.__getattribute__(self, "_model")
            raise AttributeError(f"{model} has no field {name!r}; its fields are "
                                 f"{', '.join(keys)}. Declare it in {model} first.")
        return keys[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        field = self._field(name)
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        if name not in values:
            tx: Transaction = object.__getattribute__(self, "_tx")
            current = tx.get(name, MISSING)
            if current is MISSING:
                if not field.has_default():
                    raise MissingStateError(
                        [name], "It has no default in the schema: set it before reading it.")
                current = field.make_default()
                object.__getattribute__(self, "_read")[name] = MISSING
            else:
                object.__getattribute__(self, "_read")[name] = current
            values[name] = copy.deepcopy(current)
        return values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        # Validated now, so the error points at the line that wrote it.
        object.__getattribute__(self, "_values")[name] = self._field(name).validate(
            writable(value))

    def stage(self) -> None:
        """Stage every field the block changed (in place or by assignment)."""
        tx: Transaction = object.__getattribute__(self, "_tx")
        read: dict[str, Any] = object.__getattribute__(self, "_read")
        for name, value in object.__getattribute__(self, "_values").items():
            if name not in read or not _same(value, read[name]):
                tx[name] = value

    def __repr__(self) -> str:
        return f"<editing {object.__getattribute__(self, '_model')}>"
