"""Whose state it is across reloads: the session, the logged-in user, the browser, or yours.

``browser`` identity is a random 128-bit token signed with HMAC-SHA256 and kept in
the URL's query string (``?ss=...``). Streamlit 1.67 cannot set a cookie during a
session (``st.context.cookies`` is read-only; only ``st.App`` middleware touches
HTTP responses, at page load), while ``st.query_params`` is writable and survives a
reload. The trade-off: the token is in the address bar, the history, server logs,
and any link the user shares, and whoever has that link has that state. Use
``user`` identity (``st.login``) for anything private.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any, Literal

from . import _compat
from .errors import SafestateError

IdentityMode = Literal["session", "user", "browser"] | Callable[[], str]
TOKEN_BYTES = 16  # 128 bits
#: How many base64url characters a token may have: 22 for 128 bits; 20 to 64 accepted.
TOKEN_CHARS_MIN = 20
TOKEN_CHARS_MAX = 64
#: The base64url characters of a 128-bit HMAC.
MAC_CHARS = 22
#: The longest signed token: token, a dot, its MAC. Anything longer is not looked at further.
SIGNED_MAX = TOKEN_CHARS_MAX + 1 + MAC_CHARS
_SIGNED = re.compile(
    rf"[A-Za-z0-9_-]{{{TOKEN_CHARS_MIN},{TOKEN_CHARS_MAX}}}\.[A-Za-z0-9_-]{{{MAC_CHARS}}}")


class IdentityError(SafestateError, ValueError):
    """The identity setting cannot work as given."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(token: str, secret: bytes) -> str:
    """``token.signature`` (HMAC-SHA256, 128 bits of it)."""
    mac = hmac.new(secret, token.encode(), hashlib.sha256).digest()[:16]
    return f"{token}.{_b64(mac)}"


def verify(signed: str, secret: bytes) -> str | None:
    """The token inside ``signed`` if its signature is right, else None.

    Anything else a URL can carry (forged, tampered, non-ASCII, NUL, oversized) is None:
    the shape is checked before anything is computed, and signatures compare as bytes.
    """
    if not isinstance(signed, str) or len(signed) > SIGNED_MAX or not _SIGNED.fullmatch(signed):
        return None
    token = signed.split(".", 1)[0]
    expected = sign(token, secret).encode("ascii")
    return token if hmac.compare_digest(expected, signed.encode("ascii")) else None


def new_token() -> str:
    """A fresh random 128-bit token."""
    return _b64(secrets.token_bytes(TOKEN_BYTES))


def namespace_for(identity: str) -> str:
    """The store namespace of an identity: hashed, so no email or token sits in the store."""
    return "id:" + hashlib.sha256(identity.encode()).hexdigest()[:40]


def resolve(
    mode: IdentityMode, session_id: str, secret: bytes | None, param: str,
    previous: object = None,
) -> str:
    """The calling script run's identity. Needs a script run (st.query_params, st.user).

    ``previous`` is this session's identity in its last run: a browser token that a
    page switch dropped from the URL is put back instead of starting afresh.
    Raises IdentityError when a callable identity returns no usable string.
    """
    import streamlit as st

    if mode == "session":
        return "session:" + session_id
    if mode == "user":
        user: Any = _compat.user_info()
        if user.get("is_logged_in") or user.get("email"):
            who = user.get("email") or user.get("sub")
            if who:
                return "user:" + str(who)
        return "session:" + session_id  # not logged in: this session only
    if mode == "browser":
        assert secret is not None  # checked by configure()
        given = st.query_params.get(param)
        token = verify(given or "", secret)
        if token is None:
            kept = previous if isinstance(previous, str) and previous.startswith("browser:") else ""
            # Missing after a page switch: this session's token goes back. Forged or
            # tampered, or a first visit: a fresh, empty identity.
            token = kept[len("browser:"):] if kept and not given else new_token()
            st.query_params[param] = sign(token, secret)
        return "browser:" + token
    value = mode()
    if not isinstance(value, str) or not value:
        raise IdentityError(
            f"the identity callable {getattr(mode, '__name__', mode)!r} returned {value!r}; "
            "it must return a non-empty str that names whose state it is"
        )
    return "custom:" + value
