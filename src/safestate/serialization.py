"""How persisted values become bytes and back: JSON by default, pickle only on request.

JSON goes through pydantic, so dataclasses, pydantic models, datetimes, dates,
UUIDs, sets and enums serialize; they come back as their own types when the key
is declared in a ``typed()`` schema (its type rebuilds them), and as plain JSON
values otherwise. Pickle round-trips any Python object, but unpickling runs code:
anyone who can write to the store can run code in the app. Opt in only for a
store that nobody else can write.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Literal

import pydantic
import pydantic_core

from .errors import NotSerializableError, UnreadableValueError
from .schema import SchemaRegistry

Format = Literal["json", "pickle"]


class Serializer:
    """Encodes one key's value for a store and decodes it back."""

    def __init__(self, schema: SchemaRegistry, fmt: Format = "json") -> None:
        self.format = fmt  # checked where the user gives it (configure())
        #: Declared keys: their types rebuild what JSON stored.
        self.schema = schema

    def dumps(self, key: str, value: Any) -> bytes:
        """``value`` as bytes. Raises NotSerializableError naming the key and type."""
        if self.format == "pickle":
            try:
                return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise NotSerializableError(key, value, str(exc)) from None
        try:
            return pydantic_core.to_json(value)
        except pydantic_core.PydanticSerializationError as exc:
            raise NotSerializableError(key, value, str(exc).split("\n")[0]) from None

    def loads(self, key: str, data: bytes) -> Any:
        """The value ``data`` encodes (rebuilt to the declared type when there is one).

        Raises UnreadableValueError naming the key (never the bytes) when it does not decode.
        """
        try:
            if self.format == "pickle":
                return pickle.loads(data)
            declared = self.schema.fields.get(key)
            if declared is not None:
                try:
                    return declared.adapter.validate_json(data)
                except pydantic.ValidationError:
                    pass  # stored under an older declaration: hand back plain JSON
            return json.loads(data)
        except Exception as exc:  # bytes another serializer, app or fault wrote
            raise UnreadableValueError(key, type(exc).__name__) from None
