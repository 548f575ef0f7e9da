"""Persisted state across sessions, by identity, on every store (memory, SQLite, Redis)."""

from __future__ import annotations

import functools
import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RedisServer, free_port
from streamlit.testing.v1 import AppTest

import safestate
from safestate.errors import StoreURLError
from safestate.stores import open_store

SECRET = "a-test-secret-of-enough-length"


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
        flush = open_store(url)
        flush._client.flushdb()  # type: ignore[attr-defined]
        flush.close()
    yield url
    safestate.configure(store="memory://", identity="session", persist=(), ttl=None)


def session(app: Any, **kwargs: Any) -> AppTest:
    """A new Streamlit session (a reload, another tab, another replica) running ``app``."""
    return AppTest.from_function(app, kwargs=kwargs, default_timeout=60)


def user_app(url: str, write: bool) -> None:
    import streamlit as st

    import safestate as ss

    ss.configure(store=url, identity="user", persist=["cart", "visits"])
    if write:
        ss.safe_set("cart", ["book"])
        ss.safe_set("scratch", "not persisted")
    ss.increment("visits")
    st.session_state["seen"] = (ss.safe_get("cart"), ss.safe_get("scratch"),
                                ss.safe_get("visits"))


def test_user_identity_finds_its_state_in_a_new_session(store_url: str) -> None:
    ada = session(user_app, url=store_url, write=True)
    ada.user = {"is_logged_in": True, "email": "ada@example.com"}
    ada.run()
    assert not ada.exception, ada.exception
    assert ada.session_state["seen"] == (["book"], "not persisted", 1)

    again = session(user_app, url=store_url, write=False)  # a reload: a new session
    again.user = {"is_logged_in": True, "email": "ada@example.com"}
    again.run()
    assert again.session_state["seen"] == (["book"], None, 2)

    bob = session(user_app, url=store_url, write=False)
    bob.user = {"is_logged_in": True, "email": "bob@example.com"}
    bob.run()
    assert bob.session_state["seen"] == (None, None, 1)  # nothing of Ada's


def browser_app(url: str, secret: str, value: str | None) -> None:
    import streamlit as st

    import safestate as ss

    ss.configure(store=url, identity="browser", secret=secret, persist=["note"])
    if value is not None:
        ss.safe_set("note", value)
    st.session_state["note_seen"] = ss.safe_get("note")


def _param(at: AppTest, name: str) -> str:
    value = at.query_params[name]
    return value if isinstance(value, str) else value[0]


def test_browser_token_survives_a_reload_and_forgeries_get_nothing(store_url: str) -> None:
    first = session(browser_app, url=store_url, secret=SECRET, value="mine").run()
    assert not first.exception, first.exception
    token = _param(first, "ss")
    assert len(token.split(".")[0]) >= 22  # 128 random bits, base64url

    reload = session(browser_app, url=store_url, secret=SECRET, value=None)
    reload.query_params["ss"] = token
    reload.run()
    assert reload.session_state["note_seen"] == "mine"

    body, mac = token.split(".")
    tampered = ("A" if body[0] != "A" else "B") + body[1:] + "." + mac
    forged = body + "." + "A" * len(mac)
    other_secret = safestate.identity.sign(body, b"some-other-secret-value")
    for bad in (tampered, forged, other_secret, "garbage", ""):
        visitor = session(browser_app, url=store_url, secret=SECRET, value=None)
        visitor.query_params["ss"] = bad
        visitor.run()
        assert visitor.session_state["note_seen"] is None, bad
        assert _param(visitor, "ss") not in (token, bad)  # a fresh token of its own


def test_typed_values_round_trip(store_url: str) -> None:
    def app(url: str, write: bool) -> None:
        import dataclasses
        import datetime

        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss
        from safestate import identity

        @dataclasses.dataclass
        class Address:
            city: str
            zip: str

        class Profile(BaseModel):
            p_when: datetime.datetime = datetime.datetime(2000, 1, 1)
            p_address: Address | None = None
            p_tags: set[str] = set()

        ss.configure(store=url, identity=lambda: "fixed-person", persist="schema")
        profile = ss.typed(Profile)
        if write:
            profile.p_when = datetime.datetime(2026, 11, 25, 17, 30)
            profile.p_address = Address("Lima", "15001")
            profile.p_tags = {"a", "b"}
        st.session_state["seen"] = (profile.p_when, profile.p_address, profile.p_tags,
                                    identity.namespace_for("custom:fixed-person"))

    written = session(app, url=store_url, write=True).run()
    assert not written.exception, written.exception
    read = session(app, url=store_url, write=False).run()
    when, address, tags, namespace = read.session_state["seen"]
    assert when.year == 2026 and when.minute == 30
    assert (address.city, address.zip) == ("Lima", "15001")
    assert tags == {"a", "b"}
    if store_url != "memory://":
        raw = open_store(store_url).load(namespace).values
        assert set(raw) == {"p_when", "p_address", "p_tags"}
        assert b"Lima" in raw["p_address"] and b"fixed-person" not in b"".join(raw.values())


def test_values_that_cannot_be_stored_are_refused_with_nothing_written(store_url: str) -> None:
    def app(url: str) -> None:
        import threading

        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "refuser", persist=["blob", "ok"])
        ss.safe_set("ok", 1)
        errors = []
        for call in (lambda: ss.safe_set("blob", threading.Lock()),
                     lambda: ss.safe_update({"ok": 2, "blob": object()}),
                     lambda: ss.mutate("ok", lambda v: {1, object()})):
            try:
                call()
            except ss.NotSerializableError as exc:
                errors.append((exc.key, str(exc)))
        st.session_state["r"] = (errors, ss.safe_get("ok"), ss.safe_exists("blob"))

    at = session(app, url=store_url).run()
    assert not at.exception, at.exception
    errors, ok, blob_exists = at.session_state["r"]
    assert [key for key, _ in errors] == ["blob", "blob", "ok"]
    assert all("cannot be stored as JSON" in msg and "Nothing was written" in msg
               for _, msg in errors)
    assert (ok, blob_exists) == (1, False)


def test_persisted_state_expires_after_its_ttl(store_url: str) -> None:
    def app(url: str, write: bool) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "brief", persist=["note"], ttl=0.5)
        if write:
            ss.safe_set("note", "soon gone")
        st.session_state["seen"] = ss.safe_get("note")

    assert session(app, url=store_url, write=True).run().session_state["seen"] == "soon gone"
    assert session(app, url=store_url, write=False).run().session_state["seen"] == "soon gone"
    deadline = time.monotonic() + 15
    seen = "soon gone"
    while seen is not None and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval of a bounded wait
        seen = session(app, url=store_url, write=False).run().session_state["seen"]
    assert seen is None
    removed = safestate.cleanup_store()  # on demand; Redis and memory:// drop it themselves
    assert removed == (1 if store_url.startswith("sqlite") else 0)


def test_threads_of_one_identity_lose_no_increment(store_url: str) -> None:
    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "counter", persist=["n"])
        ss.safe_set("n", 0)

        def work(handle: ss.SessionHandle) -> None:
            for _ in range(50):
                handle.increment("n")

        for t in [ss.start_thread(work) for _ in range(8)]:
            t.join(60)
        with ss.transaction() as tx:
            tx["n"] = tx["n"] + 1000
        st.session_state["n"] = ss.safe_get("n")
        st.session_state["namespace"] = ss.identity.namespace_for("custom:counter")

    at = session(app, url=store_url).run()
    assert not at.exception, at.exception
    assert at.session_state["n"] == 8 * 50 + 1000
    if store_url != "memory://":
        stored = open_store(store_url).get(at.session_state["namespace"], "n")
        assert stored == b"1400"


@pytest.mark.parametrize("kind", ["sqlite", "redis"])  # memory:// keeps shared in the process
def test_shared_lives_in_the_store(
    kind: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    store_url = (f"sqlite:///{tmp_path / 'state.db'}" if kind == "sqlite"
                 else request.getfixturevalue("redis_server").url)
    open_store(store_url).drop("shared")
    safestate.configure(store=store_url)
    try:
        safestate.shared.safe_set("board", ["hello"])
        safestate.shared.increment("clicks")
        with safestate.shared.transaction() as tx:
            tx["clicks"] = tx["clicks"] + 1
            tx["board"] = [*tx["board"], "world"]
    finally:
        safestate.configure(store="memory://", identity="session", persist=())
    raw = open_store(store_url)
    assert raw.get("shared", "clicks") == b"2"
    assert raw.get("shared", "board") == b'["hello","world"]'


def test_store_faults_show_the_panel_and_the_page_goes_on() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "unlucky", persist=["saved"])
        ss.safe_set("plain", 1)  # not persisted: works while the store is down
        try:
            ss.safe_set("saved", 1)
        except ss.StoreUnavailable:
            st.session_state["after_failed_write"] = "saved" in st.session_state
        st.markdown("PAGE START")
        with ss.guard():
            ss.safe_get("saved")
        st.markdown("PAGE END")

    at = session(app, url=dead).run()
    assert not at.exception, at.exception
    assert at.session_state["plain"] == 1
    assert at.session_state["after_failed_write"] is False  # raised: nothing changed
    assert "Saved data is out of reach" in at.error[0].value
    assert "Redis server is running" in at.error[0].value
    assert [m.value for m in at.markdown] == ["PAGE START"]
    safestate.configure(store="memory://", identity="session", persist=())


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"store": "postgres://db/x"}, StoreURLError, ["unknown scheme", "sqlite:///"]),
        ({"identity": "cookie"}, ValueError, ["identity must be"]),
        ({"identity": "browser", "secret": "short"}, ValueError, ["at least 16 bytes"]),
        ({"ttl": -1}, ValueError, ["positive"]),
        ({"ttl": "soon"}, TypeError, ["ttl"]),
        ({"persist": ["ok", 3]}, TypeError, ["persist"]),
        ({"serializer": "yaml"}, ValueError, ["pickle"]),
        ({"identity": functools.partial(str, "ada")}, ValueError, ["shared by every session"]),
        ({"identity": lambda who="ada": who}, ValueError, ["not carry values"]),
        ({"identity": lambda: SECRET}, ValueError, ["st.user"]),  # a global value, not a module
    ],
)
def test_bad_configuration_is_named_and_changes_nothing(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    before = safestate.configure(store="memory://", identity="session", persist=())
    with pytest.raises(error) as info:
        safestate.configure(**kwargs)
    for word in words:
        assert word in str(info.value)
    assert safestate.configuration.settings == before


def test_credentials_never_reach_messages() -> None:
    url = f"redis://:Sup3rS3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    store = open_store(url)
    with pytest.raises(safestate.StoreUnavailable) as info:
        store.load("x")
    assert "Sup3rS3cret" not in str(info.value) and "***@127.0.0.1" in str(info.value)
    settings = safestate.configure(store="memory://", identity="browser", secret=SECRET)
    assert SECRET not in repr(settings)
    safestate.configure(store="memory://", identity="session", persist=())


def test_a_dropped_browser_token_is_put_back_and_reset_clears_the_store(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"

    def app(url: str, secret: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity="browser", secret=secret, persist=["note"])
        if not ss.safe_exists("note"):
            ss.safe_set("note", "kept")
        if st.session_state.get("reset_now"):
            ss.reset_session()
        st.session_state["seen"] = ss.safe_get("note")

    try:
        at = session(app, url=url, secret=SECRET).run()
        token = _param(at, "ss")
        at.query_params.clear()  # e.g. st.switch_page dropped the query string
        at.run()
        assert _param(at, "ss") == token and at.session_state["seen"] == "kept"

        namespace = safestate.identity.namespace_for("browser:" + token.split(".")[0])
        assert open_store(url).get(namespace, "note") == b'"kept"'
        at.session_state["reset_now"] = True
        at.run()  # "Reset my session": the persisted copy goes too
        assert at.session_state["seen"] is None
        assert open_store(url).get(namespace, "note") is None
    finally:
        safestate.configure(store="memory://", identity="session", persist=())


FIRST_CALLS = {
    "a read": "safestate.safe_get('note')",
    "shared only": "safestate.shared.safe_get('note')",
    "a handle": "safestate.current().safe_get('note')",
}


@pytest.mark.parametrize("first", FIRST_CALLS)
def test_deployment_settings_apply_whatever_the_first_call(
    first: str, tmp_path: pathlib.Path
) -> None:
    """SAFESTATE_STORE alone moves an app to a store, whichever safestate call comes first."""
    import subprocess
    import sys

    app = tmp_path / "app.py"
    app.write_text(f"import streamlit as st\nimport safestate\n\n{FIRST_CALLS[first]}\n"
                   "st.markdown(f'STORE={safestate.configuration.settings.store}')\n")
    runner = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
              "at = AppTest.from_file(sys.argv[1], default_timeout=60).run()\n"
              "print([e.message for e in at.exception] or at.markdown[0].value)\n")
    url = f"sqlite:///{tmp_path / 'deployed.db'}"
    out = subprocess.run([sys.executable, "-c", runner, str(app)], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "SAFESTATE_STORE": url, "SAFESTATE_PERSIST": "note"})
    assert out.stdout.strip().splitlines()[-1] == f"STORE={url}", out.stderr[-2000:]
