"""Typed state's read-modify-writes (init.TypedState): ``state.step += 1`` never loses an
update silently, and ``state.edit()`` is the exact form.

Every ``+=`` that returned normally must be in the final value; one whose read another
thread or session overwrote raises StaleWriteError and changes nothing. Run here from
parallel fragments of one session, in memory and with a SQLite file and a real Redis
server; tests/test_coherence.py runs the same from two tabs and two server processes.
"""

from __future__ import annotations

import pytest
from conftest import PARALLEL_FRAGMENTS
from conftest import run_app as run

N = 300  # per fragment or session


def _hammer_app(url: str, mode: str, n: int, fragments: int) -> None:
    import threading

    import streamlit as st
    from pydantic import BaseModel

    import safestate as ss

    class Counter(BaseModel):
        step: int = 0
        cart: list[str] = []

    if url != "memory://":
        ss.configure(store=url, identity=lambda: "one-person", persist="schema")
    state = ss.typed(Counter)
    done = {"ok": 0, "stale": 0}
    lock = threading.Lock()

    def body() -> None:
        for _ in range(n):
            try:
                if mode == "plus":
                    state.step += 1
                else:
                    with state.edit() as s:
                        s.step += 1
            except ss.errors.StaleWriteError:
                with lock:
                    done["stale"] += 1
                continue
            with lock:
                done["ok"] += 1

    if fragments:
        for _ in range(fragments):
            st.fragment(parallel=True)(body)()
    else:
        body()
    st.session_state["done"] = done


@PARALLEL_FRAGMENTS
@pytest.mark.parametrize("mode", ["plus", "edit"])
def test_parallel_fragments_lose_no_typed_update(store_url: str, mode: str) -> None:
    at = run(_hammer_app, url=store_url, mode=mode, n=N, fragments=4)
    done = at.session_state["done"]
    assert done["ok"] + done["stale"] == 4 * N
    if mode == "edit":
        assert done["stale"] == 0  # the block holds the lock: nothing to refuse
    final = run(_hammer_app, url=store_url, mode=mode, n=0, fragments=0)
    if store_url == "memory://":
        final = at  # a new session of memory:// starts afresh: read this one's
    assert final.session_state["step"] == done["ok"], done


def test_an_in_place_change_of_a_read_value_is_refused_and_changes_nothing() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Basket(BaseModel):
            items: list[str] = ["a"]
            tags: dict[str, int] = {}

        state = ss.typed(Basket)
        errors = []
        for change in (lambda: state.items.append("b"), lambda: state.tags.update(x=1),
                       lambda: state.items.__setitem__(0, "z")):
            try:
                change()
            except ss.errors.ReadOnlyValueError as exc:
                errors.append(str(exc))
        st.session_state["errors"] = errors
        state.items += ["c"]  # a new list, written with the read check
        with state.edit() as s:
            s.items.append("d")
            s.tags["x"] = 1
        st.session_state["r"] = (list(state.items), dict(state.tags))

    at = run(app)
    errors = at.session_state["errors"]
    assert len(errors) == 3
    assert "state.items.append" in errors[0] and "state.edit()" in errors[0]
    assert at.session_state["r"] == (["a", "c", "d"], {"x": 1})


def test_a_stale_plus_equals_names_the_safe_form_and_changes_nothing() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Counter(BaseModel):
            step: int = 0

        state = ss.typed(Counter)
        seen = state.step  # this thread read 0 ...
        ss.safe_set("step", 5)  # ... then another writer (here: the untyped API) wrote 5
        try:
            state.step = seen + 1  # computed from the stale read: would undo the 5
        except ss.errors.StaleWriteError as exc:
            st.session_state["error"] = str(exc)
        st.session_state["after"] = state.step
        state.step = 9  # no read since the last one was consumed: a blind write is fine
        st.session_state["blind"] = state.step

    at = run(app)
    assert "state.step" in at.session_state["error"]
    assert "state.edit()" in at.session_state["error"]
    assert "safestate.increment('step')" in at.session_state["error"]
    assert at.session_state["after"] == 5
    assert at.session_state["blind"] == 9


def test_edit_writes_nothing_when_the_block_raises() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Order(BaseModel):
            qty: int = 1
            note: str = ""

        state = ss.typed(Order)
        try:
            with state.edit() as s:
                s.qty = 5
                s.note = "half"
                raise RuntimeError("payment failed")
        except RuntimeError:
            pass
        try:
            with state.edit() as s:
                s.qty = "many"
        except ss.errors.StateValidationError as exc:
            st.session_state["invalid"] = str(exc)
        st.session_state["r"] = (state.qty, state.note)

    at = run(app)
    assert at.session_state["r"] == (1, "")
    assert "qty" in at.session_state["invalid"]


def test_a_value_the_store_gives_back_in_another_form_is_not_a_stale_read() -> None:
    def app() -> None:
        import datetime

        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Loose(BaseModel):
            prefs: dict = {}  # type: ignore[type-arg]
            pairs: list = []  # type: ignore[type-arg]

        ss.configure(store="memory://", identity=lambda: "loose", persist="schema")
        state = ss.typed(Loose)
        done = []
        for n in range(3):  # the store keeps JSON: a date as a str, a tuple as a list
            state.prefs = state.prefs | {f"seen{n}": datetime.date(2026, 1, n + 1)}
            state.pairs += [(n, n)]
            done.append(n)
        st.session_state["done"] = (done, len(state.prefs), len(state.pairs))

    assert run(app).session_state["done"] == ([0, 1, 2], 3, 3)
