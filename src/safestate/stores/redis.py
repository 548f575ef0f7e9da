"""``redis://host:port/db``: several replicas on several machines.

Needs the extra: ``pip install 'streamlit-safestate[redis]'``. A namespace is one
hash ``<prefix>:<namespace>`` (prefix ``safestate``, or ``?prefix=`` in the URL).
Its fields are ``k:<key>`` and ``__version__`` (no key can collide with it).
``commit`` is one Lua script (atomic on the server, one round trip): check the
version, write, delete, bump the version, set the expiry, publish the change. Redis
expires idle namespaces itself.

Changes go out on the channel ``<prefix>:changes:<db>`` (Pub/Sub channels are server-wide,
not per database) as JSON ``{"o": origin, "n": namespace, "k": [keys] or null, "v": version}``:
key names, never values. ``origin`` tells a store its own messages. Pub/Sub delivers only
to listeners connected at the time: a listener that reconnects reports a gap.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import _events
from ..errors import StoreUnavailable, StoreURLError, VersionConflict, WriteInDoubt
from .base import (
    Callback,
    Committed,
    FaultLog,
    Listener,
    Snapshot,
    Store,
    Subscription,
    next_version,
)

try:
    import redis as _redis
except ImportError as exc:  # pragma: no cover - depends on the extra being installed
    raise ImportError(
        "redis:// stores need redis-py: pip install 'streamlit-safestate[redis]'"
    ) from exc

_VERSION = "__version__"
_CHECK = "that the Redis server is running and reachable at that address"
#: Seconds the listener waits for a message before it looks whether the store is closing.
LISTEN_TICK = 0.05
#: Seconds between a failed listener's tries: the first, doubling up to the last.
RETRY_FIRST, RETRY_MAX = 0.05, 2.0


def _sent(exc: BaseException) -> bool:
    """Whether a failed command may have reached the server (so may have run).

    Only a failure to connect proves it did not: redis-py raises those from connect(),
    with "connecting to" in the message, or with ConnectionRefusedError underneath.
    """
    if isinstance(exc, _redis.ResponseError):
        return False  # the server answered with an error: the script did not apply
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ConnectionRefusedError) or "connecting to" in str(exc):
        return False
    return isinstance(exc, (_redis.ConnectionError, _redis.TimeoutError))

# KEYS[1] hash; ARGV: expected version ('' = any), ttl ms ('' = none), n sets, the
# version a new namespace starts at, the channel, the change message's head and its keys
# (JSON), then n field/value pairs, then fields to delete.
# Returns the new version, or {'conflict', found}.
_COMMIT = """
local version = tonumber(redis.call('HGET', KEYS[1], '__version__') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= version then
  return {'conflict', version}
end
local keys = ARGV[7]
local n = tonumber(ARGV[3])
local i = 8
for _ = 1, n do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
if version == 0 then
  version = tonumber(ARGV[4])
  keys = 'null'  -- new, or expired unheard: whatever it held before is gone
else
  version = version + 1
end
redis.call('HSET', KEYS[1], '__version__', version)
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('PUBLISH', ARGV[5],
           ARGV[6] .. ',"k":' .. keys .. ',"v":' .. string.format('%d', version) .. '}')
return version
"""

# KEYS[1] hash; ARGV: the channel, the change message. Returns 1 if it existed, else 0.
_DROP = """
local gone = redis.call('DEL', KEYS[1])
if gone == 1 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return gone
"""


class RedisStore(Store):
    """Namespaces as Redis hashes; one connection pool per store."""

    kind = "redis"

    def __init__(self, url: str, socket_timeout: float = 5.0) -> None:
        self.url = url
        # ?prefix=myapp keeps apps that share one Redis database apart (default "safestate").
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = dict(query).get("prefix") or "safestate"
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        self._prefix = prefix + ":"
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
            self._client: Any = _redis.Redis.from_url(
                urlunsplit(parts._replace(query=rest)), socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout, retry_on_timeout=False,
            )
            pool = self._client.connection_pool
            # redis-py passes query options to the connection it makes on first use:
            # build one now (it does not connect), so a bad option fails here, not later.
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError) as exc:  # a port that is no number, an unknown option
            raise StoreURLError(url, f"{exc} (write redis://host:6379/0)") from None
        self._commit = self._client.register_script(_COMMIT)
        self._drop = self._client.register_script(_DROP)
        db = self._client.connection_pool.connection_kwargs.get("db", 0)
        self._channel = f"{self._prefix}changes:{db}"
        self._origin = secrets.token_hex(8)  # tells this object's own messages from others'
        self._listener = Listener(self, self._watch)
        self._listen_faults = FaultLog()  # the listener's own: its retries are not calls' faults

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.url, f"{type(exc).__name__}: {exc}", _CHECK)

    def load(self, namespace: str) -> Snapshot:
        self.round_trips += 1
        try:
            raw: dict[bytes, bytes] = self._client.hgetall(self._prefix + namespace)
        except _redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        version = int(raw.pop(_VERSION.encode(), b"0"))
        return Snapshot({k.decode()[2:]: v for k, v in raw.items()}, version)

    def get(self, namespace: str, key: str) -> bytes | None:
        self.round_trips += 1
        try:
            value: bytes | None = self._client.hget(self._prefix + namespace, "k:" + key)
        except _redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        return value

    def commit(
        self,
        namespace: str,
        sets: Mapping[str, bytes],
        deletes: Iterable[str] = (),
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        echo: bool = False,
    ) -> int:
        args: list[Any] = [
            "" if expected_version is None else expected_version,
            "" if ttl is None else max(1, int(ttl * 1000)),
            len(sets),
            next_version(0),
            self._channel,
            self._head(namespace, echo),
            json.dumps(list(dict.fromkeys([*sets, *deletes])), separators=(",", ":")),
        ]
        for key, value in sets.items():
            args += ["k:" + key, value]
        args += ["k:" + key for key in deletes]
        self.round_trips += 1
        try:
            result = self._commit(keys=[self._prefix + namespace], args=args)
        except _redis.RedisError as exc:
            if _sent(exc):
                # The script may have run (or run later, once a paused server reads it):
                # saying "failed" could be a lie, so the caller is told it is unknown.
                raise WriteInDoubt(self.url, [*sets, *deletes], f"{type(exc).__name__}: {exc}",
                                   _CHECK) from exc
            raise self._unavailable(exc) from exc
        if isinstance(result, list):
            raise VersionConflict(namespace, int(expected_version or 0), int(result[1]))
        return int(result)

    def drop(self, namespace: str) -> bool:
        self.round_trips += 1
        message = self._head(namespace) + ',"k":null,"v":0}'
        try:
            return bool(self._drop(keys=[self._prefix + namespace],
                                   args=[self._channel, message]))
        except _redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def cleanup(self) -> int:
        # Redis removes expired hashes itself (PEXPIRE); nothing is left to sweep.
        return 0

    def _head(self, namespace: str, echo: bool = False) -> str:
        """The start of a change message about ``namespace``: who made it, and where."""
        head: dict[str, Any] = {"o": self._origin, "n": namespace}
        if echo:
            head["e"] = 1
        return json.dumps(head, separators=(",", ":"))[:-1]

    def subscribe(self, callback: Callback) -> Subscription:
        return self._listener.subscribe(callback)

    def _watch(self, stop: threading.Event) -> None:
        """The listener thread: the channel's messages to the callbacks until ``stop``; on a
        failure, a new connection after a pause that doubles up to RETRY_MAX."""
        pubsub: Any = None
        pause = 0.0
        heard = False  # a subscription was confirmed: the next confirmation follows a gap
        try:
            while not stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self._client.pubsub()
                        pubsub.subscribe(self._channel)
                    message = pubsub.get_message(timeout=LISTEN_TICK)
                except _redis.RedisError as exc:
                    if pubsub is not None:
                        pubsub.close()
                        pubsub = None
                    self._listener.interrupted()
                    self._listen_faults.failed("listen", self._unavailable(exc))
                    pause = min(RETRY_MAX, max(RETRY_FIRST, pause * 2))
                    stop.wait(pause)
                    continue
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Also after redis-py reconnected by itself: messages may have been lost.
                    pause = 0.0
                    self._listen_faults.recovered(self)
                    self._listener.listening(gap=heard)
                    heard = True
                elif message["type"] == "message":
                    self._deliver(message["data"])
        finally:
            if pubsub is not None:
                pubsub.close()

    def _deliver(self, data: bytes) -> None:
        """A change message to the callbacks, unless this object sent it."""
        try:
            sent = json.loads(data)
            origin, namespace, version, keys = sent["o"], sent["n"], int(sent["v"]), sent["k"]
            change = Committed(str(namespace), version,
                               None if keys is None else tuple(str(k) for k in keys),
                               bool(sent.get("e")))
        except (ValueError, TypeError, KeyError):
            # Not ours (someone else publishes on the channel): it names no change.
            _events.log.debug("safestate: a message on %s is no change message", self._channel)
            return
        if origin != self._origin:
            self._listener.notify(change)

    def close(self) -> None:
        self._listener.close()  # first: closing the client cuts the listener's connection
        self._client.close()
