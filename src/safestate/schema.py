"""Typed session schemas: declare the session's keys once, as a pydantic model or a dataclass.

``state = safestate.typed(AppState)`` (see ``init.TypedState``) gives defaults on the
first run, attribute access that your editor completes, and a ``StateValidationError``
naming key, expected type and value when a wrong type is written, through the proxy or
through any safe_* call on a declared key: the schema registry here checks every write.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import typing
from collections.abc import Callable
from typing import Annotated, Any, cast

import pydantic
from pydantic_core import PydanticUndefined

from ._keys import MISSING
from .errors import (
    InvalidArgumentError,
    SchemaConflictError,
    StateValidationError,
    quote,
)


@dataclasses.dataclass(frozen=True)
class DeclaredKey:
    """One declared session key: its type, default and the schema that declared it."""

    name: str
    annotation: Any
    model: str
    strict: bool
    adapter: pydantic.TypeAdapter[Any] = dataclasses.field(compare=False, repr=False)
    default: Any = MISSING
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
        return self.default is not MISSING or self.default_factory is not None

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
                    default=MISSING if info.default is PydanticUndefined else info.default,
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
                default=MISSING if f.default is dataclasses.MISSING else f.default,
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
