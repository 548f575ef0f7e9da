"""Persisted state across sessions, by identity, on every store (memory, SQLite, Redis)."""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any

import pytest
from conftest import APPTEST_USER, RedisServer, free_port, wait_for
from streamlit.testing.v1 import AppTest

import safestate
from safestate import _compat
from safestate.errors import StoreURLError
from safestate.stores import open_store

SECRET = "a-test-secret-of-enough-length"


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


@APPTEST_USER
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
            when: datetime.datetime = datetime.datetime(2000, 1, 1)
            address: Address | None = None
            tags: set[str] = set()

        ss.configure(store=url, identity=lambda: "fixed-person", persist="schema")
        profile = ss.typed(Profile)
        if write:
            profile.when = datetime.datetime(2026, 11, 25, 17, 30)
            profile.address = Address("Lima", "15001")
            profile.tags = {"a", "b"}
        st.session_state["seen"] = (profile.when, profile.address, profile.tags,
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
        assert set(raw) == {"when", "address", "tags"}
        assert b"Lima" in raw["address"] and b"fixed-person" not in b"".join(raw.values())


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
            except ss.errors.NotSerializableError as exc:
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
    wait_for(lambda: session(app, url=store_url, write=False).run().session_state["seen"] is None,
             "a new session to see the note expired", timeout=15)
    # on demand; Redis and memory:// drop it themselves
    removed = safestate.current_app().configuration.cleanup()
    assert removed == (1 if store_url.startswith("sqlite") else 0)


def test_threads_of_one_identity_lose_no_increment(store_url: str) -> None:
    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "counter", persist=["n"])
        ss.safe_set("n", 0)

        def work(handle: ss.manager.SessionHandle) -> None:
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
    safestate.shared.safe_set("board", ["hello"])
    safestate.shared.increment("clicks")
    with safestate.shared.transaction() as tx:
        tx["clicks"] = tx["clicks"] + 1
        tx["board"] = [*tx["board"], "world"]
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


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"store": "postgres://db/x"}, StoreURLError, ["unknown scheme", "sqlite:///"]),
        ({"identity": "cookie"}, ValueError, ["identity must be"]),
        ({"identity": "browser", "secret": "short"}, ValueError,
         ["got a secret shorter than that", "at least 16 bytes", ".streamlit/secrets.toml"]),
        ({"identity": "browser"}, ValueError, ["got no secret", "SAFESTATE_SECRET"]),
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
    assert safestate.current_app().configuration.settings == before


def test_credentials_never_reach_messages() -> None:
    url = f"redis://:Sup3rS3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    store = open_store(url)
    with pytest.raises(safestate.StoreUnavailable) as info:
        store.load("x")
    assert "Sup3rS3cret" not in str(info.value) and "***@127.0.0.1" in str(info.value)
    settings = safestate.configure(store="memory://", identity="browser", secret=SECRET)
    assert SECRET not in repr(settings)


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
            ss.session_validator.reset_session()
        st.session_state["seen"] = ss.safe_get("note")

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
                   "st.markdown(f'STORE={safestate.current_app().configuration.settings.store}')\n")
    runner = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
              "at = AppTest.from_file(sys.argv[1], default_timeout=60).run()\n"
              "print([e.message for e in at.exception] or at.markdown[0].value)\n")
    url = f"sqlite:///{tmp_path / 'deployed.db'}"
    out = subprocess.run([sys.executable, "-c", runner, str(app)], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "SAFESTATE_STORE": url, "SAFESTATE_PERSIST": "note"})
    assert out.stdout.strip().splitlines()[-1] == f"STORE={url}", out.stderr[-2000:]


# -- hardening: identity switches, credentials, hostile tokens, settings, unreadable values --


def login_app(url: str) -> None:
    import streamlit as st
    from pydantic import BaseModel

    import safestate as ss

    def who() -> str:  # docs/guides/persistence-and-identity.md: worked out when called
        import streamlit

        return str(streamlit.session_state.get("login_user") or "anonymous")

    class Notes(BaseModel):
        draft: str = "(empty)"

    ss.configure(store=url, identity=who, persist=["notes", "draft"])
    notes = ss.typed(Notes)
    if st.session_state.get("write"):
        ss.safe_set("notes", st.session_state["write"])
        notes.draft = "draft of " + st.session_state["write"]
        st.session_state["write"] = None
    st.session_state["seen"] = (ss.safe_get("notes"), ss.safe_exists("notes"), notes.draft,
                                ss.safe_get("draft"))
    st.session_state.setdefault("seen_runs", []).append((who(), ss.safe_get("notes")))
    switch = st.session_state.pop("switch_to", None)
    if switch:  # an in-app login button: set the user, rerun at once
        st.session_state["login_user"] = switch
        st.rerun()


def test_an_identity_switch_in_a_session_never_shows_the_last_identitys_values(
    store_url: str,
) -> None:
    at = session(login_app, url=store_url)
    at.session_state["login_user"] = "alice"
    at.session_state["write"] = "alice-secret"
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["seen"] == ("alice-secret", True, "draft of alice-secret",
                                        "draft of alice-secret")

    at.session_state["login_user"] = "bob"  # same session, another identity
    at.run()
    assert not at.exception, at.exception
    # Nothing of Alice's: her keys are gone and the typed default is back.
    assert at.session_state["seen"] == (None, False, "(empty)", "(empty)")

    at.session_state["write"] = "bob-note"
    at.run()
    at.session_state["login_user"] = "alice"  # and back: her own values, none of Bob's
    at.run()
    assert at.session_state["seen"] == ("alice-secret", True, "draft of alice-secret",
                                        "draft of alice-secret")


def test_a_switch_to_an_identity_whose_load_fails_shows_nothing_of_the_last(
    tmp_path: pathlib.Path,
) -> None:
    server = RedisServer(tmp_path)  # our own: this test stops it
    try:
        at = session(login_app, url=server.url + "?socket_timeout=2")
        at.session_state["login_user"] = "alice"
        at.session_state["write"] = "alice-secret"
        at.run()
        assert at.session_state["seen"][0] == "alice-secret"
        server.stop()
        at.session_state["login_user"] = "bob"
        at.run()  # bob's load fails: alice's values must not stand in for his
        assert "is unavailable" in at.exception[0].message  # his persisted read raises
        assert "notes" not in at.session_state
        assert at.session_state["draft"] == "(empty)"
    finally:
        server.stop()


SECRET_URLS = [
    ("redis://127.0.0.1:{port}/0?password=Hunter2Secret", ["Hunter2Secret"]),
    ("redis://:p@ss@127.0.0.1:{port}/0", ["p@ss", "ss@127"]),
    ("redis://admin:Hunter2Secret@127.0.0.1:{port}/0?prefix=app&password=T0kenValue", [
        "Hunter2Secret", "T0kenValue", "admin:"]),
]


@pytest.mark.parametrize(("template", "secrets"), SECRET_URLS)
def test_store_credentials_never_reach_the_panel_logs_or_reprs(
    template: str, secrets: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = template.format(port=free_port())  # nothing listens there

    def app(url: str) -> None:
        import safestate as ss

        ss.configure(store=url, identity=lambda: "someone", persist=["saved"])
        with ss.guard():
            ss.safe_get("saved")

    with caplog.at_level("DEBUG", logger="safestate"):
        at = session(app, url=url).run()
    assert not at.exception, at.exception
    shown = " ".join(e.value for e in at.error)
    assert "Saved data is out of reach" in shown and "***" in shown
    settings = safestate.configure(store=url, identity="session")
    texts = {"panel": shown, "logs": caplog.text, "repr": repr(settings),
             "error": str(safestate.errors.StoreUnavailable(url, url, "it"))}
    assert "***" in texts["repr"]
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, (where, secret, text)


@pytest.mark.parametrize(
    "hostile",
    ["é" * 30 + "." + "a" * 22, "ü" * 200, "a" * 22 + ".\x00" + "a" * 21, "A" * 100_000,
     "\x00", "%00", "a" * 22 + "." + "b" * 22 + "\u202e"],
)
def test_a_hostile_browser_token_gets_a_fresh_identity_and_the_page_works(
    hostile: str, tmp_path: pathlib.Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    owner = session(browser_app, url=url, secret=SECRET, value="owner's note").run()
    assert not owner.exception, owner.exception
    for _ in range(2):  # on every run, not only the first
        visitor = session(browser_app, url=url, secret=SECRET, value=None)
        visitor.query_params["ss"] = hostile
        visitor.run()
        assert not visitor.exception, visitor.exception
        assert visitor.session_state["note_seen"] is None
        fresh = _param(visitor, "ss")
        assert fresh != hostile and safestate.identity.verify(fresh, SECRET.encode())


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"stroe": "sqlite:///x.db"}, ["'stroe'", "did you mean 'store'"]),
        ({"persists": ["a"]}, ["'persists'", "'persist'"]),
        ({"ttl": True}, ["ttl", "number of seconds"]),
        ({"ttl": float("nan")}, ["positive"]),
        ({"persist": 5}, ["persist", "list of str", "int"]),
        ({"persist": [""]}, ["persist"]),
        ({"query_param": 5}, ["query_param", "letters"]),
        ({"query_param": "a&b"}, ["query_param"]),
        ({"secret": 12345678901234567}, ["secret", "str or bytes"]),
        ({"store": 5}, ["store must be a URL"]),
        ({"identity": "x" * 10_000}, ["identity must be"]),
    ],
)
def test_bad_settings_raise_the_named_error_and_change_nothing(
    kwargs: dict[str, Any], words: list[str]
) -> None:
    before = safestate.configure(store="memory://", identity="session", persist=())
    with pytest.raises(safestate.errors.InvalidSettingError) as info:
        safestate.configure(**kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)
    assert len(str(info.value)) < 400  # what it quotes is bounded
    assert safestate.current_app().configuration.settings == before


@pytest.mark.parametrize("url", ["redis://h:notaport/0", "redis://h:99999999/0",
                                 "redis://h:6379/0?socket_timeout=soon",
                                 "redis://h:6379/0?no_such_option=1"])
def test_a_malformed_redis_url_is_a_store_url_error(url: str) -> None:
    with pytest.raises(StoreURLError) as info:
        safestate.configure(store=url)
    assert "redis://host:6379/0" in str(info.value)


def test_an_unknown_deployment_setting_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from safestate import config

    monkeypatch.setenv("SAFESTATE_STROE", "sqlite:///typo.db")
    monkeypatch.setenv("SAFESTATE_ZZZ", "1")  # like no setting at all
    with caplog.at_level("WARNING", logger="safestate"), pytest.warns(UserWarning) as warned:
        assert config.read_deployment()["store"] is None
    message = str(warned[0].message)
    assert "'SAFESTATE_STROE'" in message and "store" in message and "persist" in message
    assert "(did you mean SAFESTATE_STORE?)" in message
    assert "'SAFESTATE_ZZZ' names" in message or "'SAFESTATE_ZZZ'," in message
    assert "sqlite:///typo.db" not in message and "SAFESTATE_STROE" in caplog.text


def test_a_misspelt_secrets_setting_is_warned_about_with_the_closest_name(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `persit = [...]` under [safestate] in secrets.toml: persisting nothing in silence would
    # look like a bug in the store.
    def app() -> None:
        import warnings

        import streamlit as st

        import safestate as ss

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ss.safe_get("anything")  # the first call reads the deployment's settings
        st.session_state["warned"] = [str(w.message) for w in caught]

    at = AppTest.from_function(app, default_timeout=30)
    at.secrets["safestate"] = {"persit": ["cart"]}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    [message] = [m for m in at.session_state["warned"] if "names no setting" in m]
    assert "'[safestate] persit' (did you mean persist?)" in message


def test_a_reconfigure_forgets_the_old_stores_failure(tmp_path: pathlib.Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    good = f"sqlite:///{tmp_path / 'good.db'}"

    def app(dead: str, good: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=dead, identity=lambda: "mover", persist=["saved"])
        try:
            ss.safe_get("saved")
        except ss.StoreUnavailable:
            st.session_state["first"] = "unavailable"
        ss.configure(store=good, identity=lambda: "mover", persist=["saved"])
        ss.safe_set("saved", "here")  # at once, not 5 s later
        st.session_state["then"] = ss.safe_get("saved")

    at = session(app, dead=dead, good=good).run()
    assert not at.exception, at.exception
    assert (at.session_state["first"], at.session_state["then"]) == ("unavailable", "here")


@pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)  # memory:// never
def test_unreadable_stored_values_raise_a_named_error_on_every_path(store_url: str) -> None:
    from safestate import identity

    namespace = identity.namespace_for("custom:unlucky")
    raw = open_store(store_url)
    raw.commit(namespace, {"bad": b"\xff\xfe not json"})
    raw.commit("shared", {"sbad": b"\xff\xfe not json"})

    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "unlucky", persist=["bad"])

        def in_transaction() -> None:
            with ss.shared.transaction() as tx:
                tx["sbad"]

        seen = []
        for name, call in [
            ("mutate", lambda: ss.mutate("bad", lambda v: v)),
            ("increment", lambda: ss.increment("bad")),
            ("shared.safe_get", lambda: ss.shared.safe_get("sbad")),
            ("shared.increment", lambda: ss.shared.increment("sbad")),
            ("shared.transaction", in_transaction),
        ]:
            try:
                call()
                seen.append((name, "no error"))
            except ss.errors.UnreadableValueError as exc:
                seen.append((name, exc.key))
        st.session_state["seen"] = seen
        st.session_state["keys"] = ss.shared.keys()
        st.markdown("BEFORE")
        with ss.guard():
            ss.shared.safe_get("sbad")
        st.markdown("AFTER")

    try:
        at = session(app, url=store_url).run()
        assert not at.exception, at.exception
        assert at.session_state["seen"] == [
            ("mutate", "bad"), ("increment", "bad"), ("shared.safe_get", "sbad"),
            ("shared.increment", "sbad"), ("shared.transaction", "sbad")]
        assert "sbad" in at.session_state["keys"]
        assert "can't be read" in at.error[0].value and "\\xff" not in at.error[0].value
        assert [m.value for m in at.markdown] == ["BEFORE"]
        assert safestate.shared.safe_delete("sbad") is True  # it can be cleared
    finally:
        raw.drop("shared")
        raw.close()


@APPTEST_USER
def test_identity_user_with_nobody_logged_in_says_so_once(
    caplog: pytest.LogCaptureFixture, tmp_path: pathlib.Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"

    def app(url: str) -> None:
        import safestate as ss

        ss.configure(store=url, identity="user", persist=["cart"])
        ss.increment("cart")

    with caplog.at_level("WARNING", logger="safestate"):
        at = session(app, url=url)
        at.user = {"is_logged_in": False}  # AppTest's default user has an email
        at.run()
        assert not at.exception, at.exception
        assert "nobody is logged in" in at.toast[0].value  # showErrorDetails is "full"
        at.run()
        assert not at.toast
    notes = [r for r in caplog.records if "nobody is logged in" in r.getMessage()]
    fix = "Call st.login()" if _compat.at_least(_compat.ST_LOGIN) else "has no st.login"
    assert len(notes) == 1 and fix in notes[0].getMessage()


def test_a_redis_commit_that_timed_out_is_reported_in_doubt_and_the_cache_follows_the_store(
    tmp_path: pathlib.Path,
) -> None:
    import signal

    server = RedisServer(tmp_path)  # our own: this test pauses it
    url = server.url + "?socket_timeout=0.5"

    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "paused", persist=["n"])
        step = st.session_state.get("step")
        if step == "write":
            try:
                ss.safe_set("n", 2)
                st.session_state["outcome"] = "saved"
            except ss.StoreUnavailable as exc:
                st.session_state["outcome"] = (type(exc).__name__, str(exc))
            return  # the store is paused: a read now would fail too
        if step is None:
            ss.safe_set("n", 1)
        st.session_state["seen"] = ss.safe_get("n")

    try:
        at = session(app, url=url).run()
        assert at.session_state["seen"] == 1
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)  # the server hangs mid-conversation
        try:
            at.session_state["step"] = "write"
            at.run()
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)  # it reads the write it was sent
        kind, message = at.session_state["outcome"]
        assert kind == "WriteInDoubt" and "may or may not have been saved" in message
        assert "'n'" in message

        raw = open_store(server.url)
        namespace = safestate.identity.namespace_for("custom:paused")
        # The resumed server applies it: it was saved after all.
        wait_for(lambda: raw.get(namespace, "n") == b"2", "the write in doubt to be saved",
                 timeout=10)
        at.session_state["step"] = "read"
        at.run()
        assert at.session_state["seen"] == 2  # the cache follows the store, not the undo
        raw.close()
    finally:
        server.stop()


def test_an_identity_switch_followed_by_st_rerun_shows_nothing_of_the_last_identity(
    store_url: str,
) -> None:
    at = session(login_app, url=store_url)
    at.session_state["login_user"] = "alice"
    at.session_state["write"] = "alice-secret"
    at.run()
    at.session_state["switch_to"] = "bob"  # this run calls safestate, then reruns as bob
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["seen_runs"][-2:] == [("alice", "alice-secret"), ("bob", None)]


def test_after_a_failed_load_of_a_new_identity_its_writes_never_reach_the_last_one(
    tmp_path: pathlib.Path,
) -> None:
    server = RedisServer(tmp_path)  # our own: this test stops and restarts it

    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        def who() -> str:
            import streamlit

            return str(streamlit.session_state.get("login_user") or "anonymous")

        ss.configure(store=url, identity=who, persist=["notes"])
        if who() == "alice":
            ss.safe_set("notes", "alice-secret")
            return
        try:
            ss.safe_get("notes")  # bob's first load: the store is down
        except ss.StoreUnavailable:
            st.session_state["first"] = "unavailable"
        st.session_state["store_back"]()  # the store answers again, in the same run
        st.session_state["mutated"] = ss.mutate("notes", lambda v: f"bob saw {v}")

    url = server.url + "?socket_timeout=2"
    try:
        at = session(app, url=url)
        at.session_state["login_user"] = "alice"
        at.run()
        server.stop()
        at.session_state["login_user"] = "bob"
        at.session_state["store_back"] = server.start
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["first"] == "unavailable"
        assert at.session_state["mutated"] == "bob saw None"  # not "bob saw alice-secret"
        raw = open_store(server.url)
        alice = safestate.identity.namespace_for("custom:alice")
        bob = safestate.identity.namespace_for("custom:bob")
        assert raw.get(alice, "notes") == b'"alice-secret"'  # untouched by bob
        assert raw.get(bob, "notes") == b'"bob saw None"'
        raw.close()
    finally:
        server.stop()


def test_read_modify_writes_of_one_process_take_turns_instead_of_conflicting(
    tmp_path: pathlib.Path,
) -> None:
    import threading

    from prometheus_client import CollectorRegistry

    url = f"sqlite:///{tmp_path / 'state.db'}"
    safestate.configure(store=url)
    registry = CollectorRegistry()
    safestate.monitoring.enable_metrics(registry=registry)
    try:
        def body() -> None:
            for _ in range(20):
                safestate.shared.increment("hits")

        threads = [threading.Thread(target=body) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert safestate.shared.safe_get("hits") == 320
        conflicts = registry.get_sample_value("safestate_errors_total",
                                              {"error": "VersionConflict"}) or 0.0
        assert conflicts == 0  # one process's writers wait their turn; none is wasted
    finally:
        safestate.monitoring.disable_metrics()


def test_a_worker_holding_shared_never_deadlocks_with_a_read_modify_write_in_its_turn() -> None:
    """The script's mutate holds the session's turn while its fn wants `shared`; a worker holds
    `shared` and increments the same session key. Neither may wait for the other forever."""

    def app() -> None:
        import threading

        import streamlit as st

        import safestate as ss

        ss.configure(store="memory://", identity=lambda: "turns", persist=["k"])
        in_fn, worker_holds_shared, worker_done = (threading.Event() for _ in range(3))
        outcome: dict[str, object] = {}

        def work(handle: ss.manager.SessionHandle) -> None:
            in_fn.wait(10)
            with ss.shared.session_lock():
                worker_holds_shared.set()
                outcome["worker"] = handle.increment("k")
            worker_done.set()

        def fn(value: int) -> int:
            in_fn.set()
            worker_holds_shared.wait(10)
            try:
                with ss.shared.session_lock(timeout=5):  # bounded: a deadlock shows as a timeout
                    pass
            except ss.errors.LockTimeoutError:
                outcome["script"] = "deadlocked"
            return value + 1

        ss.start_thread(work)
        outcome["script_result"] = ss.mutate("k", fn, 0)
        worker_done.wait(10)
        st.session_state["outcome"] = (outcome.get("script"), ss.safe_get("k"),
                                       worker_done.is_set())

    at = AppTest.from_function(app, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.session_state["outcome"] == (None, 2, True)  # both increments, no deadlock


