"""``redis://host:port/db``: several replicas on several machines.

Needs the extra: ``pip install 'streamlit-safestate[redis]'``. A namespace is one
hash ``<prefix>:<namespace>`` (prefix ``safestate``, or ``?prefix=`` in the URL).
Its fields are ``k:<key>`` and ``__version__`` (no key can collide with it).
``commit`` is one Lua script (atomic on the server, one round trip): check the
version, write, delete, bump the version, set the expiry. Redis expires idle
namespaces itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StoreUnavailable, StoreURLError, VersionConflict, WriteInDoubt
from .base import Snapshot, Store, next_version

try:
    import redis as _redis
except ImportError as exc:  # pragma: no cover - depends on the extra being installed
    raise ImportError(
        "redis:// stores need redis-py: pip install 'streamlit-safestate[redis]'"
    ) from exc

_VERSION = "__version__"
_CHECK = "that the Redis server is running and reachable at that address"


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
# version a new namespace starts at, then n field/value pairs, then fields to delete.
# Returns the new version, or {'conflict', found}.
_COMMIT = """
local version = tonumber(redis.call('HGET', KEYS[1], '__version__') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= version then
  return {'conflict', version}
end
local n = tonumber(ARGV[3])
local i = 5
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
else
  version = version + 1
end
redis.call('HSET', KEYS[1], '__version__', version)
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('PERSIST', KEYS[1])
end
return version
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
    ) -> int:
        args: list[Any] = [
            "" if expected_version is None else expected_version,
            "" if ttl is None else max(1, int(ttl * 1000)),
            len(sets),
            next_version(0),
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
        try:
            return bool(self._client.delete(self._prefix + namespace))
        except _redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def cleanup(self) -> int:
        # Redis removes expired hashes itself (PEXPIRE); nothing is left to sweep.
        return 0

    def close(self) -> None:
        self._client.close()
