"""``configure()``: where state persists and for whom, in one place.

Every setting left out is read from ``st.secrets["safestate"]`` or an environment
variable ``SAFESTATE_<NAME>`` (STORE, IDENTITY, TTL, PERSIST, SECRET, SERIALIZER, LIVE, ...),
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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from . import _compat, _events
from ._backends import Backends, BackendSlot
from .errors import InvalidSettingError, quote
from .live import LiveUpdates
from .monitoring import enable_metrics, metrics_enabled
from .persistence import Persistence, PersistentView
from .schema import SchemaRegistry
from .serialization import Format, Serializer
from .settings import NAMES as _NAMES
from .settings import Settings
from .stores import Store, open_store

#: Deployment-only settings: not part of configure(), read from secrets or env alone.
_DEPLOYMENT_ONLY = ("metrics_port",)


#: The longest query parameter name that may carry the browser token.
QUERY_PARAM_MAX = 64
_PARAM = re.compile(rf"[A-Za-z0-9_.~-]{{1,{QUERY_PARAM_MAX}}}")


def read_deployment() -> dict[str, Any]:
    """The settings the deployment gives: st.secrets["safestate"][name], else $SAFESTATE_<NAME>.

    A ``SAFESTATE_*`` variable or secrets entry that names no setting is warned about
    (a typo would otherwise keep the default in silence).
    """
    known = _NAMES + _DEPLOYMENT_ONLY
    found: dict[str, Any] = {}
    unknown: list[str] = []
    try:
        section = _compat.secrets_section("safestate")
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
    return found


def _warn_unknown(unknown: list[str], known: tuple[str, ...]) -> None:
    def named(entry: str) -> str:  # "[safestate] persit (did you mean persist?)"
        env = entry.startswith("SAFESTATE_")
        name = entry.removeprefix("SAFESTATE_").lower() if env else entry.split("] ", 1)[-1]
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if not near:
            return quote(entry)
        closest = "SAFESTATE_" + near[0].upper() if env else near[0]
        return f"{quote(entry)} (did you mean {closest}?)"

    listed = ", ".join(map(named, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
    message = (f"safestate: {listed} names no setting and is ignored. Known settings: "
               f"{', '.join(known)} (as SAFESTATE_<NAME> or under [safestate] in secrets).")
    _events.log.warning(message)
    warnings.warn(message, UserWarning, stacklevel=2)


def _closest(name: str) -> str:
    near = difflib.get_close_matches(name, _NAMES, n=1, cutoff=0.5)
    return f"; did you mean {near[0]!r}?" if near else f"; the settings are {', '.join(_NAMES)}"


def _settings(given: dict[str, Any], deployment: Mapping[str, Any]) -> Settings:
    for name in given:
        if name not in _NAMES:
            raise InvalidSettingError(f"configure() got an unknown setting {quote(name)}"
                                      f"{_closest(name)}")
    raw = {n: given[n] if given.get(n) is not None else deployment.get(n) for n in _NAMES}
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
                    _query_param(raw["query_param"]), _live(raw["live"]),
                    _live_interval(raw["live_interval"]),
                    _names("live_exclude", raw["live_exclude"]))


def _live(live: Any) -> bool:
    if live is None:
        return True
    if isinstance(live, str):  # SAFESTATE_LIVE=0 / false / off
        text = live.strip().lower()
        if text in ("1", "true", "yes", "on", ""):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    if isinstance(live, bool):
        return live
    raise InvalidSettingError(f"live must be True or False (SAFESTATE_LIVE: 1 or 0), got "
                              f"{quote(live)}")


def _live_interval(interval: Any) -> float:
    if interval is None:
        return Settings().live_interval
    try:
        seconds = float(interval) if not isinstance(interval, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidSettingError(f"live_interval must be a number of seconds >= 0 (the least "
                                  f"time between two live reruns of a session), got "
                                  f"{quote(interval)}")
    return seconds


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
    if persist == "schema":
        return "schema"
    return _names("persist", persist, " or 'schema' (every typed() field)")


def _names(setting: str, names: Any, more: str = "") -> tuple[str, ...]:
    if not names:
        return ()
    if isinstance(names, str):
        return tuple(p.strip() for p in names.split(",") if p.strip())
    if not isinstance(names, Iterable) or isinstance(names, (bytes, dict)):
        raise InvalidSettingError(
            f"{setting} lists key names: a list of str such as ['cart'], a comma-separated "
            f"str{more}; got {type(names).__name__}"
        )
    found = tuple(names)
    for key in found:
        if not isinstance(key, str) or not key:
            raise InvalidSettingError(f"{setting} lists key names (non-empty str); got "
                                      f"{quote(key)}")
    return found


def _secret(secret: Any, mode: Any) -> bytes | None:
    if isinstance(secret, str):
        secret = secret.encode()
    elif isinstance(secret, (bytearray, memoryview)):
        secret = bytes(secret)
    if secret is not None and not isinstance(secret, bytes):
        raise InvalidSettingError(f"secret must be a str or bytes, got {type(secret).__name__}")
    if mode == "browser" and (secret is None or len(secret) < 16):
        # Not the length: a secret's size is a hint to whoever guesses it.
        got = "no secret" if secret is None else "a secret shorter than that"
        raise InvalidSettingError(
            f"identity='browser' signs its tokens with a secret of at least 16 bytes, and got "
            f"{got}: give one, the same on every replica, as configure(secret=...), "
            "`secret = \"...\"` under [safestate] in .streamlit/secrets.toml, or "
            "$SAFESTATE_SECRET. Make one "
            "with: python -c \"import secrets; print(secrets.token_hex(32))\""
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
            "query_param names the URL parameter that carries the browser token: 1 to "
            f"{QUERY_PARAM_MAX} "
            f"letters, digits or _.~- (default 'ss'), got {quote(param)}"
        )
    return param


def _metrics_from_deployment(deployment: Mapping[str, Any]) -> None:
    """Serve metrics if the deployment names a port (metrics_port / $SAFESTATE_METRICS_PORT).

    Raises ValueError for a value that is not a port. A port that is taken, or metrics
    the app already turned on, are logged, not raised: monitoring must not take the
    app down.
    """
    raw = deployment.get("metrics_port")
    if raw is None or raw == "":
        return
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidSettingError(f"metrics_port (SAFESTATE_METRICS_PORT) must be a port "
                                  f"number from 1 to 65535, got {quote(raw)}")
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
    """The settings in force and the store they opened; ``configure()`` swaps them whole."""

    def __init__(
        self, schema: SchemaRegistry,
        deployment: Callable[[], Mapping[str, Any]] = read_deployment,
        live: LiveUpdates | None = None,
    ) -> None:
        self._schema = schema
        self._live = live
        self._read_deployment = deployment
        self._deployment: Mapping[str, Any] | None = None
        self._lock = threading.Lock()
        self._metrics_checked = False
        #: The backends in force, read by the session manager and ``shared`` on each call.
        self.backends = BackendSlot(self._first)

    @property
    def settings(self) -> Settings | None:
        """The settings in force (None before the first configuration)."""
        current = self.backends.current
        return None if current is None else current.settings

    @property
    def store(self) -> Store | None:
        """The store in force (None before the first configuration)."""
        current = self.backends.current
        return None if current is None else current.store

    def deployment(self) -> Mapping[str, Any]:
        """The deployment's settings, read once: a script calls configure() on every run,
        and looking for secrets files each time would cost more than its safestate calls."""
        found = self._deployment
        if found is None:
            found = self._deployment = self._read_deployment()
        return found

    def configure(self, **given: Any) -> Settings:
        """Apply settings (see ``safestate.configure``); cheap when nothing changed.

        Raises InvalidSettingError, StoreURLError, StoreUnavailable, with nothing changed.
        """
        settings = _settings(given, self.deployment())
        with self._lock:
            current = self.backends.current
            if current is not None and settings.same(current.settings):
                return current.settings
            store = open_store(settings.store)  # raises before anything changes
            persisted: Callable[[str], bool]
            if settings.persist == "schema":
                persisted = self._schema.fields.__contains__
            else:
                persisted = frozenset(settings.persist).__contains__
            persistence = Persistence(
                store, Serializer(self._schema, settings.serializer), persisted,
                settings.identity, settings.secret, settings.query_param, settings.ttl,
                self._live,
            )
            if self._live is not None:
                self._live.configure(settings.live, settings.live_interval,
                                     settings.live_exclude)
            shared_in_store = not settings.store.startswith("memory:")
            old = self.backends.swap(Backends(
                settings, store, persistence if settings.persist else None,
                PersistentView(persistence, "shared", None) if shared_in_store else None,
            ))
            if old is not None:
                if old.sessions is not None:
                    old.sessions.close()
                old.store.close()
            return settings

    def _first(self) -> Backends:
        self.ensure()
        current = self.backends.current
        assert current is not None  # ensure() configured it
        return current

    def ensure(self) -> None:
        """Configure from the deployment (secrets, env) once, if configure() was not called.

        Raises InvalidSettingError for a deployment setting that cannot work.
        """
        if self.backends.current is None:
            self.configure()
        if not self._metrics_checked:
            _metrics_from_deployment(self.deployment())  # a bad value raises on every call
            self._metrics_checked = True

    def cleanup(self) -> int:
        """Remove expired persisted state now; return how many namespaces went."""
        self.ensure()
        store = self.store
        assert store is not None
        return store.cleanup()

    def close(self) -> None:
        """Close the store in force (an app being replaced, as in tests)."""
        current = self.backends.current
        if current is not None:
            current.store.close()
        if self._live is not None:
            self._live.close()
