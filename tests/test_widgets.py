"""Widgets bound to state keep their value across page switches, reloads and restarts.

Streamlit 1.67 deletes a widget's key when a run does not draw the widget; a widget bound
with ``session_manager.bind(key)`` keeps its value under ``key`` instead (see
safestate/widgets.py). Multipage apps are written to files, as ``st.navigation`` needs.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from conftest import APPTEST_NAVIGATION, run_app
from streamlit.testing.v1 import AppTest

import safestate
import safestate.testing
from safestate import _compat
from safestate.app import App
from safestate.errors import NoSessionError, WidgetBindingError
from safestate.identity import namespace_for

SECRET = "a-test-secret-of-enough-length"

MAIN = '''
import streamlit as st
from pydantic import BaseModel, Field

import safestate


class Profile(BaseModel):
    nickname: str = Field("", max_length=12)
    notes: str = ""
    subscribed: bool = False
    age: int = Field(0, ge=0)
    volume: int = 50
    color: str = "red"
    size: str = "M"


{configure}
state = safestate.typed(Profile)
st.navigation([st.Page("form.py", default=True), st.Page("elsewhere.py")]).run()
'''
FORM = '''
import streamlit as st

import safestate

bind = safestate.session_manager.bind
st.text_input("Nickname", **bind("nickname"))
st.text_area("Notes", **bind("notes"))
st.checkbox("Subscribed", **bind("subscribed"))
st.number_input("Age", step=1, **bind("age"))  # step=1: an int widget, for an int key
st.slider("Volume", 0, 100, **bind("volume"))
st.selectbox("Color", ["red", "green", "blue"], **bind("color"))
st.radio("Size", ["S", "M", "L"], **bind("size"))
st.text_input("Plain", key="plain")  # not bound: Streamlit drops it off this page
if st.button("Rename", key="rename"):  # another path, after the widget is drawn
    safestate.safe_set("nickname", "Renamed")
'''
ELSEWHERE = '''
import streamlit as st

import safestate

st.markdown(f"nickname is {safestate.safe_get('nickname')!r}")
'''

#: Each widget kind: (AppTest accessor, bound key, a new value, its default).
KINDS = [
    ("text_input", "nickname", "Ada", ""),
    ("text_area", "notes", "two\nlines", ""),
    ("checkbox", "subscribed", True, False),
    ("number_input", "age", 42, 0),
    ("slider", "volume", 80, 50),
    ("selectbox", "color", "blue", "red"),
    ("radio", "size", "L", "M"),
]


def write_app(folder: pathlib.Path, configure: str = "") -> pathlib.Path:
    """The two-page app above in ``folder``; ``configure`` is a line run before typed()."""
    (folder / "app.py").write_text(MAIN.format(configure=configure))
    (folder / "form.py").write_text(FORM)
    (folder / "elsewhere.py").write_text(ELSEWHERE)
    return folder / "app.py"


def open_app(main: pathlib.Path, token: str | None = None) -> AppTest:
    """A new session of the app (a tab, a reload with the URL's ``?ss=`` token); first run."""
    at = AppTest.from_file(str(main), default_timeout=60)
    if token is not None:
        at.query_params["ss"] = token
    return ran(at)


def ran(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def widget(at: AppTest, kind: str, key: str) -> Any:
    return getattr(at, kind)(key=f"{key}__widget")


@pytest.fixture
def main(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_app(tmp_path)


@APPTEST_NAVIGATION
def test_streamlit_drops_the_key_of_a_widget_a_run_does_not_draw(main: pathlib.Path) -> None:
    # Streamlit 1.67: what bind() works around. A widget's own key goes with the widget.
    at = open_app(main)
    at.text_input(key="plain").set_value("typed")
    ran(at)
    assert at.session_state["plain"] == "typed"
    ran(at.switch_page("elsewhere.py"))
    assert "plain" not in at.session_state
    ran(at.switch_page("form.py"))
    assert at.text_input(key="plain").value == ""


@pytest.mark.parametrize(("kind", "key", "new", "default"), KINDS, ids=[k[0] for k in KINDS])
@APPTEST_NAVIGATION
def test_each_widget_kind_keeps_its_value_across_a_page_switch(
    main: pathlib.Path, kind: str, key: str, new: Any, default: Any
) -> None:
    at = open_app(main)
    assert widget(at, kind, key).value == default  # the typed default, given by bind()
    widget(at, kind, key).set_value(new)
    ran(at)
    assert at.session_state[key] == new  # on_change wrote it back

    ran(at.switch_page("elsewhere.py"))
    assert f"{key}__widget" not in at.session_state  # Streamlit dropped the widget's key...
    assert at.session_state[key] == new  # ...not the bound one
    ran(at.switch_page("form.py"))
    assert widget(at, kind, key).value == new
    ran(at)  # and it stays on the next run, with no write of its own
    assert widget(at, kind, key).value == new
    assert at.session_state[key] == new


@APPTEST_NAVIGATION
def test_the_widget_shows_a_value_written_by_another_path(main: pathlib.Path) -> None:
    at = open_app(main)
    at.text_input(key="nickname__widget").set_value("Ada")
    ran(at)
    at.button(key="rename").click()
    ran(at)  # the button writes after the widget is drawn: this run still shows the old one
    assert at.session_state["nickname"] == "Renamed"
    ran(at)
    assert at.text_input(key="nickname__widget").value == "Renamed"


def test_a_worker_write_reaches_the_widget_on_the_next_run() -> None:
    def app() -> None:
        import streamlit as st

        import safestate

        safestate.ensure_session_initialized({"status": ""})
        st.text_input("Status", **safestate.session_manager.bind("status"))
        if st.button("Work", key="work"):  # after the widget: the worker writes meanwhile
            safestate.start_thread(lambda handle: handle.safe_set("status", "done")).join(30)

    at = run_app(app)
    at.button(key="work").click()
    ran(at)
    assert at.session_state["status"] == "done"
    assert at.text_input(key="status__widget").value == ""  # drawn before the write
    ran(at)
    assert at.text_input(key="status__widget").value == "done"


@APPTEST_NAVIGATION
def test_a_refused_value_changes_nothing_and_the_page_says_why(main: pathlib.Path) -> None:
    at = open_app(main)
    at.text_input(key="nickname__widget").set_value("Ada")
    ran(at)
    too_long = "a-nickname-far-too-long"
    at.text_input(key="nickname__widget").set_value(too_long)
    ran(at)
    assert at.session_state["nickname"] == "Ada"  # nothing changed...
    assert at.text_input(key="nickname__widget").value == "Ada"  # ...the widget went back
    [shown] = [e.value for e in at.error]
    assert "'nickname'" in shown and "Nothing was written" in shown
    assert too_long not in shown  # key names, never values
    ran(at)
    assert not at.error  # said once
    assert at.text_input(key="nickname__widget").value == "Ada"

    at.text_input(key="nickname__widget").set_value(too_long)
    ran(at.switch_page("elsewhere.py"))  # refused on the way to another page...
    assert at.session_state["nickname"] == "Ada"
    ran(at.switch_page("form.py"))
    assert not at.error  # ...is not news when the user comes back
    assert at.text_input(key="nickname__widget").value == "Ada"


def test_an_int_key_needs_an_int_widget() -> None:
    # Streamlit 1.67: number_input is a float widget unless value=/min_value=/step= are ints,
    # whatever the value it was given through st.session_state; a strict int key refuses it.
    def app(step: int | None) -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate

        class Counts(BaseModel):
            items: int = 0

        safestate.typed(Counts)
        st.number_input("Items", step=step, **safestate.session_manager.bind("items"))

    at = run_app(app, step=None)
    at.number_input(key="items__widget").set_value(3)
    ran(at)
    assert at.session_state["items"] == 0 and "'items' must be int" in at.error[0].value
    at = run_app(app, step=1)
    at.number_input(key="items__widget").set_value(3)
    ran(at)
    assert at.session_state["items"] == 3 and not at.error


@APPTEST_NAVIGATION
def test_a_bound_value_survives_a_reload_and_a_restart(
    tmp_path: pathlib.Path, store_url: str, fresh_app: App
) -> None:
    configure = (f"safestate.configure(store={store_url!r}, identity='browser', "
                 f"secret={SECRET!r}, persist='schema')")
    main = write_app(tmp_path, configure)
    at = open_app(main)
    at.text_input(key="nickname__widget").set_value("Ada")
    at.slider(key="volume__widget").set_value(80)
    ran(at)
    token = at.query_params["ss"]
    token = token if isinstance(token, str) else token[0]

    reload = open_app(main, token)  # the same URL in a new session
    assert reload.text_input(key="nickname__widget").value == "Ada"
    assert reload.slider(key="volume__widget").value == 80

    store = fresh_app.configuration.store
    assert store is not None  # the bound keys are in the store; the widget keys are not
    stored = store.load(namespace_for("browser:" + token.split(".")[0])).values
    assert {"nickname", "volume"} <= set(stored) and not [k for k in stored if "widget" in k]

    if store_url.startswith("memory:"):
        return  # a memory store ends with its process
    with safestate.testing.fresh_app():  # a restarted server: nothing in memory
        restarted = open_app(main, token)
        assert restarted.text_input(key="nickname__widget").value == "Ada"
        assert restarted.slider(key="volume__widget").value == 80


def test_an_unset_bound_key_leaves_the_widget_its_default_until_a_change() -> None:
    def app() -> None:
        import streamlit as st

        import safestate

        st.text_input("Free", value=None, **safestate.session_manager.bind("free"))

    at = run_app(app)
    assert at.text_input(key="free__widget").value is None
    assert "free" not in at.session_state
    at.text_input(key="free__widget").set_value("given")
    ran(at)
    assert at.session_state["free"] == "given"
    assert at.text_input(key="free__widget").value == "given"


def test_a_named_widget_key_and_two_widgets_on_one_key() -> None:
    def app() -> None:
        import streamlit as st

        import safestate

        bind = safestate.session_manager.bind
        st.text_input("Here", **bind("shared_name", widget_key="here"))
        with st.sidebar:
            st.text_input("There", **bind("shared_name", widget_key="there"))

    at = run_app(app)
    at.text_input(key="here").set_value("one")
    ran(at)
    assert at.text_input(key="there").value == "one"
    at.text_input(key="there").set_value("two")
    ran(at)
    assert at.text_input(key="here").value == "two"


@pytest.mark.parametrize(
    ("widget_key", "why"),
    [("name", "must differ"), ("age", "declared or persisted"),
     ("remembered", "declared or persisted")],
)
def test_bind_refuses_a_widget_key_that_cannot_work(widget_key: str, why: str) -> None:
    def app(widget_key: str) -> None:
        import dataclasses

        import streamlit as st

        import safestate
        from safestate.errors import InvalidArgumentError

        @dataclasses.dataclass
        class Person:
            age: int = 0

        safestate.configure(persist=["remembered"])
        safestate.typed(Person)
        try:
            safestate.session_manager.bind("name", widget_key=widget_key)
        except InvalidArgumentError as exc:
            st.session_state["refused"] = str(exc)

    at = run_app(app, widget_key=widget_key)
    assert why in at.session_state["refused"]
    assert repr(widget_key) in at.session_state["refused"]


def test_bind_after_its_widget_was_drawn_raises_a_named_error() -> None:
    def app() -> None:
        import streamlit as st

        import safestate
        from safestate.errors import WidgetBindingError

        safestate.safe_set("title", "new")
        st.text_input("Title", key="title__widget")
        try:
            safestate.session_manager.bind("title")
        except WidgetBindingError as exc:
            st.session_state["refused"] = str(exc)

    at = run_app(app)
    message = at.session_state["refused"]
    assert "'title__widget'" in message and "already drawn" in message and "before" in message
    assert issubclass(WidgetBindingError, safestate.SafestateError)


def test_values_a_widget_cannot_show() -> None:
    # Streamlit 1.54+, for a value set through st.session_state before the widget is drawn:
    # a selectbox or radio shows its first option for a value not among its options (the
    # bound key keeps its value), a slider raises for one out of its range (since 1.44).
    def app(limit: int, choices: bool = True) -> None:
        import streamlit as st

        import safestate

        safestate.safe_update({"colour": "purple", "level": 300})
        if choices:
            st.selectbox("Colour", ["red", "blue"], **safestate.session_manager.bind("colour"))
            st.radio("Shade", ["red", "blue"],
                     **safestate.session_manager.bind("colour", widget_key="shade"))
        st.slider("Level", 0, limit, **safestate.session_manager.bind("level"))

    if _compat.at_least("1.54"):
        at = run_app(app, limit=1000)
        assert at.selectbox(key="colour__widget").value == "red"
        assert at.radio(key="shade").value == "red"
    else:  # before 1.53 (selectbox) and 1.54 (radio) Streamlit raises for such a value
        at = AppTest.from_function(app, kwargs={"limit": 1000}, default_timeout=60).run()
        [error] = at.exception
        assert "purple is not in iterable" in error.message
    assert at.session_state["colour"] == "purple"
    at = AppTest.from_function(app, kwargs={"limit": 100, "choices": False},
                               default_timeout=60).run()
    if _compat.at_least("1.44"):
        [error] = at.exception
        assert "300" in error.message and "max_value" in error.message
    else:  # before 1.44 the slider shows the value past its end
        assert not at.exception and at.slider[0].value == 300


def test_bind_outside_a_script_run_raises_no_session_error() -> None:
    with pytest.raises(NoSessionError, match="bind"):
        safestate.session_manager.bind("anything")
