"""``configure()``: where state persists and for whom, in one place.

Every setting left out is read from ``st.secrets["safestate"]`` or an environment
variable ``SAFESTATE_<NAME>`` (STORE, IDENTITY, TTL, PERSIST, SECRET, SERIALIZER),
so a deployment moves from memory to SQLite to Redis without a code change. With
neither, safestate keeps today's behaviour: memory://, per-session, nothing persisted.
"""

from __future__ import annotations

import decimal
import difflib
import functools
import math
import numbers
import os
import re
import threading
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from . import _events
from . import identity as _identity
from .errors import InvalidSettingError, quote, redact
from .persistence import Persistence, PersistentView
from .serialization import Format, Serializer
from .stores.base import Store, open_store

if TYPE_CHECKING:
    from .manager import SessionStateManager
    from .shared import SharedState

_NAMES = ("store", "identity", "ttl", "persist", "secret", "serializer", "query_param")
#: Deployment-only settings: not part of configure(), read from secrets or env alone.
_DEPLOYMENT_ONLY = ("metrics_port",)


@dataclass(frozen=True)
class Settings:
    """The settings in force (``safestate.configure()`` returns them)."""

    store: str = "memory://"
    identity: _identity.IdentityMode = "session"
    ttl: float | None = None
    persist: tuple[str, ...] | str = ()
    secret: bytes | None = field(default=None, repr=False)
    serializer: Format = "json"
    query_param: str = "ss"

    def __repr__(self) -> str:
        # The store URL may carry a password (redis://:pw@host, ?password=): masked. The
        # secret is never shown.
        shown = [f"store={redact(self.store)!r}"] + [
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
            if f.name not in ("store", "secret")
        ]
        return f"Settings({', '.join(shown)})"

    def _key(self) -> tuple[Any, ...]:
        ident: object = self.identity
        if callable(ident):
            # A script re-creates its functions on every rerun: the same code is the same
            # setting (configure() refuses callables that capture values).
            code = getattr(ident, "__code__", None)
            ident = (getattr(ident, "__module__", ""), getattr(ident, "__qualname__", ""),
                     getattr(code, "co_code", None), getattr(code, "co_consts", None))
        return (self.store, ident, self.ttl, self.persist, self.secret, self.serializer,
                self.query_param)


_deployment: dict[str, Any] | None = None
_PARAM = re.compile(r"[A-Za-z0-9_.~-]{1,64}")


def _from_deployment(name: str) -> Any:
    """A setting from st.secrets["safestate"][name], else $SAFESTATE_<NAME>, else None.

    Read once per process: a script calls configure() on every run, and looking for
    secrets files each time would cost more than the rest of the run's safestate calls.
    A ``SAFESTATE_*`` variable or secrets entry that names no setting is warned about
    (a typo would otherwise keep the default in silence).
    """
    global _deployment
    if _deployment is None:
        known = _NAMES + _DEPLOYMENT_ONLY
        found: dict[str, Any] = {}
        unknown: list[str] = []
        try:
            import streamlit as st

            section = st.secrets.get("safestate")
            if section is not None:
                found = {n: section[n] for n in known if n in section}
                unknown += [f"[safestate] {k}" for k in section if k not in known]
        except Exception:  # no secrets.toml, or not under Streamlit: env only
            pass
        for n in known:
            found.setdefault(n, os.environ.get(f"SAFESTATE_{n.upper()}"))
        names = {f"SAFESTATE_{n.upper()}" for n in known}
        unknown += sorted(v for v in os.environ if v.startswith("SAFESTATE_") and v not in names)
        if unknown:
            _warn_unknown(unknown, known)
        _deployment = found
    return _deployment.get(name)


def _warn_unknown(unknown: list[str], known: tuple[str, ...]) -> None:
    listed = ", ".join(quote(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    message = (f"safestate: {listed} names no setting and is ignored. Known settings: "
               f"{', '.join(known)} (as SAFESTATE_<NAME> or under [safestate] in secrets).")
    _events.log.warning(message)
    warnings.warn(message, UserWarning, stacklevel=2)


def _closest(name: str) -> str:
    near = difflib.get_close_matches(name, _NAMES, n=1, cutoff=0.5)
    return f"; did you mean {near[0]!r}?" if near else f"; the settings are {', '.join(_NAMES)}"


def _settings(given: dict[str, Any]) -> Settings:
    for name in given:
        if name not in _NAMES:
            raise InvalidSettingError(f"configure() got an unknown setting {quote(name)}"
                                      f"{_closest(name)}")
    raw = {n: given[n] if given.get(n) is not None else _from_deployment(n) for n in _NAMES}
    defaults = Settings()
    store = raw["store"] or defaults.store
    if not isinstance(store, str):
        raise InvalidSettingError(f"store must be a URL string such as 'sqlite:///state.db', "
                                  f"got {type(store).__name__}")
    mode = raw["identity"] or defaults.identity
    if callable(mode) and _captures_values(mode):
        # configure() is app-wide: a callable holding one session's values would hand
        # that session's identity to everyone.
        raise InvalidSettingError(
            "an identity callable must work the identity out when called (from st.user, "
            "st.context.headers or st.session_state), not carry values captured from one "
            "session: it is shared by every session of the app"
        )
    if not callable(mode) and mode not in ("session", "user", "browser"):
        raise InvalidSettingError(
            f"identity must be 'session', 'user', 'browser' or a callable returning a str, "
            f"got {quote(mode)}"
        )
    return Settings(store, mode, _ttl(raw["ttl"]), _persist(raw["persist"]),
                    _secret(raw["secret"], mode), _serializer(raw["serializer"]),
                    _query_param(raw["query_param"]))


def _ttl(ttl: Any) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (numbers.Real, decimal.Decimal, str)):
        raise InvalidSettingError(f"ttl must be a number of seconds (e.g. 7 * 24 * 3600), got "
                                  f"{quote(ttl)}")
    try:
        seconds = float(ttl)
    except ValueError:
        raise InvalidSettingError(f"ttl must be a number of seconds, got {quote(ttl)}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidSettingError(f"ttl must be a positive number of seconds, got {quote(ttl)}")
    return seconds


def _persist(persist: Any) -> tuple[str, ...] | str:
    if not persist:
        return ()
    if isinstance(persist, str):
        if persist == "schema":
            return persist
        return tuple(p.strip() for p in persist.split(",") if p.strip())
    if not isinstance(persist, Iterable) or isinstance(persist, (bytes, dict)):
        raise InvalidSettingError(
            f"persist lists key names: a list of str such as ['cart'], a comma-separated str, "
            f"or 'schema' (every typed() field); got {type(persist).__name__}"
        )
    names = tuple(persist)
    for key in names:
        if not isinstance(key, str) or not key:
            raise InvalidSettingError(f"persist lists key names (non-empty str); got "
                                      f"{quote(key)}")
    return names


def _secret(secret: Any, mode: Any) -> bytes | None:
    if isinstance(secret, str):
        secret = secret.encode()
    elif isinstance(secret, (bytearray, memoryview)):
        secret = bytes(secret)
    if secret is not None and not isinstance(secret, bytes):
        raise InvalidSettingError(f"secret must be a str or bytes, got {type(secret).__name__}")
    if mode == "browser" and (secret is None or len(secret) < 16):
        raise InvalidSettingError(
            "identity='browser' signs its tokens: give a secret of at least 16 bytes, as "
            "configure(secret=...), st.secrets['safestate']['secret'] or $SAFESTATE_SECRET"
        )
    return secret


def _serializer(serializer: Any) -> Format:
    serializer = serializer or "json"
    if serializer not in ("json", "pickle"):
        raise InvalidSettingError(
            f"serializer must be 'json' or 'pickle' (opt-in), got {quote(serializer)}")
    return cast("Format", serializer)


def _query_param(param: Any) -> str:
    param = "ss" if param is None or param == "" else param
    if not isinstance(param, str) or not _PARAM.fullmatch(param):
        raise InvalidSettingError(
            "query_param names the URL parameter that carries the browser token: 1 to 64 "
            f"letters, digits or _.~- (default 'ss'), got {quote(param)}"
        )
    return param


def _metrics_from_deployment() -> None:
    """Serve metrics if the deployment names a port (metrics_port / $SAFESTATE_METRICS_PORT).

    Raises ValueError for a value that is not a port. A port that is taken, or metrics
    the app already turned on, are logged, not raised: monitoring must not take the
    app down.
    """
    raw = _from_deployment("metrics_port")
    if raw is None or raw == "":
        return
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidSettingError(f"metrics_port (SAFESTATE_METRICS_PORT) must be a port "
                                  f"number from 1 to 65535, got {quote(raw)}")
    from .monitoring import enable_metrics, metrics_enabled

    if metrics_enabled():
        _events.log.info("safestate: metrics are already on; metrics_port %s not used", text)
        return
    try:
        enable_metrics(int(text))
    except (OSError, ValueError) as exc:
        _events.log.error("safestate: %s", exc)


def _captures_values(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` holds values rather than working them out when called.

    Closures, defaults, partials, and globals that are not modules (a page script's
    ``name = st.text_input(...)`` is one session's value) all count.
    """
    if isinstance(fn, functools.partial):
        return True
    if getattr(fn, "__closure__", None) or getattr(fn, "__defaults__", None):
        return True
    if getattr(fn, "__kwdefaults__", None):
        return True
    code = getattr(fn, "__code__", None)
    scope = getattr(fn, "__globals__", {})
    names = code.co_names if code is not None else ()
    return any(n in scope and not isinstance(scope[n], types.ModuleType) for n in names)


class Configuration:
    """The settings in force and the store they opened."""

    def __init__(self, manager: SessionStateManager, shared: SharedState) -> None:
        self._manager = manager
        self._shared = shared
        self._lock = threading.Lock()
        self.settings: Settings | None = None
        self.store: Store | None = None
        self._metrics_checked = False

    def configure(self, **given: Any) -> Settings:
        """Apply settings (see ``safestate.configure``); cheap when nothing changed."""
        settings = _settings(given)
        with self._lock:
            if self.settings is not None and settings._key() == self.settings._key():
                return self.settings
            store = open_store(settings.store)  # raises before anything changes
            old, self.store = self.store, store
            schema = self._manager._schema
            persisted: Callable[[str], bool]
            if settings.persist == "schema":
                persisted = schema.fields.__contains__
            else:
                names = frozenset(settings.persist)
                persisted = names.__contains__
            persistence = Persistence(
                store, Serializer(schema, settings.serializer), persisted, settings.identity,
                settings.secret, settings.query_param, settings.ttl,
            )
            self._manager._persistence = persistence if settings.persist else None
            shared_in_store = not settings.store.startswith("memory:")
            self._shared._view = (
                PersistentView(persistence, "shared", None) if shared_in_store else None
            )
            # Last: ensure() reads it without the lock, so the rest must be in place first.
            self.settings = settings
            if old is not None:
                old.close()
            return settings

    def ensure(self) -> None:
        """Configure from the deployment (secrets, env) once, if configure() was not called."""
        if self.settings is None:
            self.configure()
        if not self._metrics_checked:
            _metrics_from_deployment()  # a bad value raises here on every first call
            self._metrics_checked = True
        self._shared._before_first_use = None

    def cleanup(self) -> int:
        """Remove expired persisted state now; return how many namespaces went."""
        self.ensure()
        assert self.store is not None
        return self.store.cleanup()
