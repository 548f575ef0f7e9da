"""Every error safestate raises, in one place.

All derive from :class:`SafestateError`; each also derives from the built-in a
caller would expect (``TypeError`` for a wrong type, ``ValueError`` for a bad
value, ``RuntimeError`` for a call made in the wrong place), so ``except
TypeError`` keeps working.
"""

from __future__ import annotations

import re

from . import _events

#: Longest quote of user-supplied text (a name, a value's repr) that a message carries.
QUOTE_LIMIT = 60

# userinfo: everything between "scheme://" and the last "@" before the host ends, so a
# password that itself holds "@" (redis://:p@ss@host) is masked whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)[^/?#\s]*@")
# A query parameter whose name suggests a secret (password=, auth_token=, api_key=, ...).
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;][^=&#\s]*(?:pass|token|secret|key|auth)[^=&#\s]*=)[^&#\s]*", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` with every URL's credentials masked: userinfo and secret-named query parameters.

    The one redaction every message, log record and repr that can carry a URL goes through.
    """
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_PARAM.sub(r"\g<name>***", text)


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that name what they got."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SafestateError(Exception):
    """Base class of every error raised by safestate."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        # Errors are counted where they are made: safestate makes one only to raise it.
        count = _events.error
        if count is not None:
            count(type(self).__name__)


class NoSessionError(SafestateError, RuntimeError):
    """A session-scoped call was made from a thread that has no Streamlit session.

    Streamlit gives such threads one process-wide placeholder state shared by
    every such thread, so safestate refuses instead of leaking data between users.
    """

    def __init__(self, operation: str, script_only: bool = False,
                 no_server: bool = False) -> None:
        where = "outside a Streamlit session (no script run context on this thread)"
        server = ("No Streamlit server runs in this process: start the app with `streamlit "
                  "run app.py` (or test it with streamlit.testing.v1.AppTest).")
        if script_only:
            fix = (f"{operation}() draws on or checks the page of a script run: call it from "
                   "the script itself" + (f". {server}" if no_server else
                                          ", not from a worker thread."))
        elif no_server:  # `python app.py`: no Streamlit runtime in this process at all
            fix = server
        else:
            fix = ("In a worker thread, take a handle in the script with `handle = "
                   f"safestate.current()` and call `handle.{operation}(...)` from the worker, or "
                   "start the worker with `safestate.start_thread(fn)`. For state shared by all "
                   "users, use `safestate.shared`.")
        super().__init__(f"{operation}() was called {where}. {fix}")
        self.operation = operation


class InvalidKeyError(SafestateError, TypeError):
    """A state key is not a string."""

    def __init__(self, key: object) -> None:
        super().__init__(
            f"state keys must be non-empty strings; got {type(key).__name__} {key!r:.60}. "
            "Pass the key as a str, e.g. str(key)."
        )
        self.key = key


class EmptyKeyError(SafestateError, ValueError):
    """A state key is the empty string."""

    def __init__(self) -> None:
        super().__init__("state keys must be non-empty strings; got ''. Name the key.")
        self.key = ""


class NotAMappingError(SafestateError, TypeError):
    """``safe_update`` was given something that is not a mapping."""

    def __init__(self, value: object, call: str = "safe_update") -> None:
        super().__init__(
            f"{call}() takes a mapping of key -> value; got {type(value).__name__}. "
            f"Pass a dict, e.g. {call}({{'a': 1}}) or {call}(dict(pairs)). "
            "Nothing was written."
        )
        self.value = value


class LockTimeoutError(SafestateError, TimeoutError):
    """A lock could not be acquired within the timeout given."""

    def __init__(self, scope: str, timeout: float) -> None:
        super().__init__(
            f"could not acquire the lock of {scope} within {timeout:g} s; another thread "
            "holds it. Retry, raise the timeout, or keep the locked block shorter."
        )
        self.scope = scope
        self.timeout = timeout


class LockNotOwnedError(SafestateError, RuntimeError):
    """A lock was released by a thread that does not hold it (a bug in the caller)."""

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"the lock of {scope} was released by a thread that does not hold it; release a "
            "lock in the thread that took it, with `with` blocks"
        )
        self.scope = scope


class TransactionClosedError(SafestateError, RuntimeError):
    """A transaction object was used after its ``with`` block ended."""

    def __init__(self) -> None:
        super().__init__(
            "this transaction has already ended; open a new one with "
            "`with safestate.transaction() as tx:`"
        )


class StreamlitCompatibilityError(SafestateError, RuntimeError):
    """The installed Streamlit no longer has an internal safestate relies on."""


class StateValidationError(SafestateError, TypeError):
    """A value written to a declared (typed) key does not match its declared type."""

    def __init__(self, key: str, expected: str, value: object, model: str, reason: str) -> None:
        # The value itself stays out of the message (messages end up in logs); it is on .value.
        super().__init__(
            f"{key!r} must be {expected} (declared in {model}); got "
            f"{type(value).__name__}: {reason}. Nothing was written."
        )
        self.key = key
        self.value = value
        self.expected = expected
        self.model = model


class SchemaConflictError(SafestateError, TypeError):
    """Two schemas declare the same key with different types."""

    def __init__(self, key: str, first: str, second: str) -> None:
        super().__init__(
            f"session key {key!r} is declared twice with different types: {first} and {second}. "
            "Rename one of the fields, or declare the key in one schema only."
        )
        self.key = key


class MissingStateError(SafestateError, LookupError):
    """Session keys a page needs are not set."""

    def __init__(
        self, keys: list[str], hint: str = "", errors: dict[str, str] | None = None
    ) -> None:
        self.errors = dict(errors or {})
        names = ", ".join(
            f"{k!r} ({self.errors[k]})" if k in self.errors else repr(k) for k in keys
        )
        super().__init__(
            f"missing session state: {names}. "
            + (hint or "Initialize them first, e.g. safestate.ensure_session_initialized({...}) "
               "with a default or factory for each.")
        )
        self.keys = keys


class UnknownDependencyError(SafestateError, LookupError):
    """A dependency name that was never registered."""

    #: How many registered names the message lists before "and N more".
    LISTED = 10

    def __init__(self, name: str, known: list[str]) -> None:
        # Quoted and cut: names can be long and many, and messages end up in logs.
        listed = ", ".join(quote(k) for k in known[: self.LISTED]) or "none yet"
        if len(known) > self.LISTED:
            listed += f" and {len(known) - self.LISTED} more"
        super().__init__(
            f"no dependency named {quote(name)} is registered (registered: {listed}). Register "
            f"it with safestate.register_dependency({quote(name)}, factory) before using it."
        )
        self.name = name


class DependencyNotReady(SafestateError, RuntimeError):
    """A dependency could not be built, or failed its health check."""

    def __init__(self, name: str, reason: str, description: str | None = None) -> None:
        what = f"{description} ({quote(name)})" if description else quote(name)
        super().__init__(f"{what} is not ready: {reason}")
        self.name = name
        self.reason = reason
        self.description = description


class InvalidArgumentError(SafestateError, TypeError, ValueError):
    """An argument of the wrong type or value; the message names it and says what to pass.

    Derives from both TypeError and ValueError, so either ``except`` catches it.
    """


class InvalidSettingError(InvalidArgumentError):
    """A ``configure()`` setting (or its secrets/env counterpart) that cannot work as given."""


class UnreadableValueError(SafestateError, ValueError):
    """A stored value that does not decode: another serializer or app wrote it, or it is damaged."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"the stored value of {quote(key)} cannot be read ({reason}): another serializer "
            "or app wrote it, or it is corrupt. Overwrite it with safe_set() or remove it with "
            "safe_delete()."
        )
        self.key = key


class StoreUnavailable(SafestateError, ConnectionError):
    """The configured store (SQLite file, Redis server) cannot be reached or used."""

    def __init__(self, url: str, detail: str, check: str) -> None:
        safe = redact(url)
        super().__init__(f"state store {safe} is unavailable: {redact(detail)}. "
                         f"Check {check}.")
        self.url = safe


class WriteInDoubt(StoreUnavailable):
    """The store did not answer a commit in time: the write may or may not have been saved.

    The session's cached copy is dropped and read again from the store on the next call,
    so what the page shows matches what the store holds.
    """

    def __init__(self, url: str, keys: list[str], detail: str, check: str) -> None:
        names = ", ".join(quote(k) for k in keys[:5]) + (" ..." if len(keys) > 5 else "")
        super().__init__(url, detail, check)
        self.args = (
            f"the write of {names or 'the changes'} to state store {self.url} may or may not "
            f"have been saved: the store did not answer in time ({redact(detail)}). Read the "
            f"value again before writing it anew; check {check}.",
        )
        self.keys = keys


class VersionConflict(SafestateError):
    """Another writer changed a namespace since it was read (optimistic concurrency)."""

    def __init__(self, namespace: str, expected: int, found: int) -> None:
        super().__init__(
            f"namespace {namespace!r} is at version {found}, not {expected}: another process "
            "wrote it first. Read it again and retry."
        )
        self.namespace = namespace
        self.expected = expected
        self.found = found


class StoreURLError(SafestateError, ValueError):
    """A store URL that names no supported store."""

    def __init__(self, url: str, reason: str) -> None:
        url = redact(url)
        super().__init__(
            f"cannot open state store {url!r}: {reason}. Use memory://, "
            "sqlite:///path/to/file.db or redis://host:6379/0."
        )
        self.url = url


class NotSerializableError(SafestateError, TypeError):
    """A value for a persisted key cannot be stored with the configured serializer."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(
            f"{key!r} is persisted, but a {type(value).__name__} cannot be stored as JSON "
            f"({reason}). Store plain data (dict, list, str, numbers, datetimes, dataclasses, "
            "pydantic models), or persist this key no longer. Nothing was written."
        )
        self.key = key
        self.value_type = type(value).__name__


class StaleWriteError(SafestateError, RuntimeError):
    """A write computed from a read that another thread, tab or replica has since overwritten.

    ``state.step += 1`` reads, then writes: if ``step`` changed in between, the write
    would silently undo that change. It is refused instead, and nothing changed.
    """

    def __init__(self, keys: list[str], where: str = "attribute") -> None:
        names = ", ".join(repr(k) for k in keys[:10])
        if where == "attribute":
            key = keys[0]
            safe = (f"`with state.edit() as s: s.{key} += ...` (the block reads and writes "
                    f"under the lock) or safestate.increment({key!r}) / "
                    f"safestate.mutate({key!r}, fn)")
            what = f"state.{key} was changed by another thread, tab or replica after this "
            what += "thread read it"
        else:
            safe = ("run the block again, or use safestate.mutate()/increment(), which read "
                    "again and retry on their own")
            what = f"{names} changed in another process while this block ran"
        super().__init__(f"{what}, so this write (computed from the old value) was refused "
                         f"and nothing changed. Use {safe}.")
        self.keys = keys


class ReadOnlyValueError(SafestateError, TypeError):
    """An in-place change to a value read through typed state: it would change a copy only."""

    def __init__(self, key: str, method: str) -> None:
        super().__init__(
            f"state.{key}.{method}(...) would change a copy, not the state: values read "
            f"through typed state are read-only. Assign a new value (state.{key} = "
            f"[*state.{key}, item]) or edit it in a block: `with state.edit() as s: "
            f"s.{key}.{method}(...)`."
        )
        self.key = key


class WidgetBindingError(SafestateError, RuntimeError):
    """A bound widget's key cannot be given the bound key's value in this run."""

    def __init__(self, key: str, widget_key: str, reason: str) -> None:
        super().__init__(
            f"bind({key!r}) cannot set its widget key {widget_key!r}: {reason}. Call bind() "
            "as the widget's arguments, once per widget and before it is drawn: "
            f"st.text_input('Label', **session_manager.bind({key!r})); give each widget bound "
            "to the same key its own widget_key=."
        )
        self.key = key
        self.widget_key = widget_key
