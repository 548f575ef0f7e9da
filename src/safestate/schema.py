"""Typed session schemas: declare the session's keys once, as a pydantic model or a dataclass.

``state = safestate.typed(AppState)`` gives defaults on the first run, attribute
access that your editor completes (the proxy is typed as ``AppState``), and a
``StateValidationError`` naming key, expected type and value when a wrong type is
written, through the proxy or through any safe_* call on a declared key.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, cast

import pydantic
from pydantic_core import PydanticUndefined

from .errors import (
    InvalidArgumentError,
    MissingStateError,
    SchemaConflictError,
    StateValidationError,
    quote,
)

if TYPE_CHECKING:
    from ._scope import Scope

M = TypeVar("M")
_MISSING: Any = object()


@dataclasses.dataclass(frozen=True)
class DeclaredKey:
    """One declared session key: its type, default and the schema that declared it."""

    name: str
    annotation: Any
    model: str
    strict: bool
    adapter: pydantic.TypeAdapter[Any] = dataclasses.field(compare=False, repr=False)
    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None

    @property
    def type_name(self) -> str:
        """The declared type, as written (without module paths)."""
        ann = self.annotation
        if isinstance(ann, type):
            return ann.__name__
        return re.sub(r"\b(?:[A-Za-z_][\w]*\.)+(?=[A-Za-z_])", "", str(ann))

    def has_default(self) -> bool:
        """Whether the key gets a value on the first run."""
        return self.default is not _MISSING or self.default_factory is not None

    def make_default(self) -> Any:
        """A fresh default for one session (copied: sessions never share a mutable default)."""
        if self.default_factory is not None:
            return self.default_factory()
        return copy.deepcopy(self.default)

    def validate(self, value: Any) -> Any:
        """The value to store. Raises StateValidationError naming key, type and value."""
        try:
            return self.adapter.validate_python(value, strict=self.strict)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise StateValidationError(
                self.name, self.type_name, value, self.model, str(first.get("msg", exc))
            ) from None


def _declared_keys(model: type[Any]) -> list[DeclaredKey]:
    name = model.__name__
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        strict = model.model_config.get("strict")
        keys = []
        for field_name, info in model.model_fields.items():
            # Field(ge=0, max_length=...) constraints live in the metadata: keep them.
            annotated: Any = info.annotation
            if info.metadata:
                annotated = Annotated.__class_getitem__((info.annotation, *info.metadata))  # type: ignore[attr-defined]
            keys.append(
                DeclaredKey(
                    name=field_name,
                    annotation=info.annotation,
                    model=name,
                    strict=True if strict is None else bool(strict),
                    default=_MISSING if info.default is PydanticUndefined else info.default,
                    default_factory=cast("Callable[[], Any] | None", info.default_factory),
                    adapter=pydantic.TypeAdapter(annotated),
                )
            )
        return keys
    if dataclasses.is_dataclass(model) and isinstance(model, type):
        hints = typing.get_type_hints(model)
        return [
            DeclaredKey(
                name=f.name,
                annotation=hints[f.name],
                model=name,
                strict=True,
                default=_MISSING if f.default is dataclasses.MISSING else f.default,
                default_factory=(
                    None if f.default_factory is dataclasses.MISSING else f.default_factory
                ),
                adapter=pydantic.TypeAdapter(hints[f.name]),
            )
            for f in dataclasses.fields(model)
        ]
    raise InvalidArgumentError(
        f"typed() takes a pydantic BaseModel subclass or a dataclass, got {quote(model)}. "
        "Declare the session's keys as class fields with types and defaults."
    )


class SchemaRegistry:
    """Every declared session key of the app, from every schema declared so far."""

    def __init__(self) -> None:
        self.fields: dict[str, DeclaredKey] = {}
        # By "module.qualname": a script defines its classes anew on every rerun, and
        # the newest definition replaces the last one instead of piling up.
        self._models: dict[str, tuple[type[Any], list[DeclaredKey]]] = {}
        self._lock = threading.Lock()

    def declare(self, model: type[Any]) -> list[DeclaredKey]:
        """Declare ``model``'s fields (idempotent).

        Raises InvalidArgumentError (a TypeError) for something that is not a pydantic
        model or dataclass class, SchemaConflictError.
        """
        if not isinstance(model, type):
            raise InvalidArgumentError(
                f"typed() takes a class: a pydantic BaseModel subclass or a dataclass, got "
                f"{type(model).__name__} {quote(model)}. Declare the session's keys as class "
                "fields with types and defaults, e.g. class AppState(BaseModel): step: int = 0")
        name = f"{getattr(model, '__module__', '')}.{getattr(model, '__qualname__', model)}"
        known = self._models.get(name)
        if known is not None and known[0] is model:
            return known[1]
        keys = _declared_keys(model)
        with self._lock:
            for key in keys:
                other = self.fields.get(key.name)
                # Types compare by name: a rerun's new class is the same type to a reader.
                if other is not None and other.type_name != key.type_name:
                    raise SchemaConflictError(
                        key.name, f"{other.type_name} in {other.model}",
                        f"{key.type_name} in {key.model}",
                    )
            for key in keys:
                self.fields[key.name] = key
            self._models[name] = (model, keys)
        return keys

    def check(self, key: str, value: Any) -> Any:
        """``value`` validated against ``key``'s declared type, if it has one."""
        declared = self.fields.get(key)
        return value if declared is None else declared.validate(value)


class TypedState(Generic[M]):
    """Attribute access to a session's declared keys; ``typed()`` returns one typed as the model.

    Reading an unset key raises MissingStateError; a name that is not a field
    raises AttributeError listing the fields (typos fail loudly).
    """

    __slots__ = ("_keys", "_model", "_scope")

    def __init__(self, model: type[M], scope: Scope, keys: list[DeclaredKey]) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_scope", scope)
        object.__setattr__(self, "_keys", {k.name: k for k in keys})

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
        value = self._scope.safe_get(name, _MISSING)
        if value is _MISSING and field.has_default():
            # First read in this session: give it its default, once, atomically.
            value = self._scope.mutate(
                name, lambda v: field.make_default() if v is _MISSING else v, _MISSING
            )
        if value is _MISSING:
            raise MissingStateError(
                [name], "It has no default in the schema: set it before reading it."
            )
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self._field(name)
        self._scope.safe_set(name, value)  # validated by the scope's schema hook

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
            values = {n: self._scope.safe_get(n, _MISSING) for n in keys}
        model = object.__getattribute__(self, "_model")
        return cast("M", model(**{k: v for k, v in values.items() if v is not _MISSING}))

    def __repr__(self) -> str:
        model = object.__getattribute__(self, "_model").__name__
        return f"<typed session state {model}>"
