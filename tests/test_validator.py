"""Declared keys, dependencies, the recovery panel and health reports, in real script runs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import raised_in_thread
from streamlit.testing.v1 import AppTest

import safestate
from safestate.errors import (
    EmptyKeyError,
    InvalidKeyError,
    UnknownDependencyError,
)


def run(app: Any, **kwargs: Any) -> AppTest:
    return AppTest.from_function(app, kwargs=kwargs, default_timeout=60).run()


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def guarded_page() -> None:
    import streamlit as st

    import safestate as ss

    def connect() -> dict[str, str]:
        if not ss.shared.safe_get("db_up", False):
            raise ConnectionError("database unreachable at db:5432")
        return {"dsn": "db:5432"}

    ss.register_dependency("db", connect, description="The orders database")
    ss.increment("visits")
    deps = ss.require("db")
    st.markdown(f"PAGE OK {deps['db']['dsn']} visits={ss.safe_get('visits')}")


def test_require_shows_the_panel_then_retry_renders_the_page() -> None:
    at = run(guarded_page)
    assert not at.exception
    assert len(at.error) == 1
    assert "The orders database" in at.error[0].value
    assert "database unreachable at db:5432" in at.error[0].value
    assert labels(at) == ["Retry", "Reset my session"]
    assert not any(m.startswith("PAGE OK") for m in markdown(at))

    at.button(key="safestate_recovery_retry").click().run()  # still down: still the panel
    assert len(at.error) == 1 and not any(m.startswith("PAGE OK") for m in markdown(at))

    safestate.shared.safe_set("db_up", True)  # the database comes back
    at.button(key="safestate_recovery_retry").click().run()
    assert not at.error
    assert "PAGE OK db:5432 visits=3" in markdown(at)


def test_reset_my_session_clears_this_sessions_state() -> None:
    at = run(guarded_page)
    at.run()
    assert at.session_state["visits"] == 2
    at.button(key="safestate_recovery_reset").click().run()
    assert at.session_state["visits"] == 1  # state cleared, then this run counted once


def test_unhealthy_dependency_is_rebuilt_on_retry() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        builds = ss.shared.increment("builds")
        ss.register_dependency(
            "model",
            lambda: {"build": builds},
            health_check=lambda m: ss.shared.safe_get("healthy", False),
            description="The AI model",
        )
        model = ss.require("model")["model"]
        st.markdown(f"MODEL {model['build']}")

    at = run(app)
    assert "The AI model" in at.error[0].value and "health check failed" in at.error[0].value
    safestate.shared.safe_set("healthy", True)
    at.button(key="safestate_recovery_retry").click().run()
    assert not at.error
    assert markdown(at) == ["MODEL 2"]  # the unhealthy instance was dropped and rebuilt


def test_optional_dependency_degrades_with_a_warning() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def broken() -> None:
            raise TimeoutError("recommendations service timed out")

        ss.register_dependency("recs", broken, required=False, description="Recommendations")
        recs = ss.require("recs")["recs"]
        st.markdown(f"PAGE OK recs={recs}")

    at = run(app)
    assert not at.error
    assert "**Recommendations** is unavailable" in at.warning[0].value
    assert "timed out" in at.warning[0].value
    assert markdown(at) == ["PAGE OK recs=None"]


def test_guard_turns_a_deep_failure_into_the_panel() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("cfg", lambda: 1 / 0, description="Configuration")

        @ss.guard()
        def page() -> None:
            st.markdown("before")
            ss.get_dependency("cfg")
            st.markdown("after")

        page()

    at = run(app)
    assert not at.exception
    assert "Configuration" in at.error[0].value and "ZeroDivisionError" in at.error[0].value
    assert markdown(at) == ["before"]
    assert labels(at) == ["Retry", "Reset my session"]


def optional_guarded_page(form: str) -> None:
    """An optional dependency used through ``guard()`` + ``get_dependency``, in ``form``."""
    import streamlit as st

    import safestate as ss

    def broken() -> None:
        raise TimeoutError("recommendations service timed out")

    ss.register_dependency("recs", broken, required=False, description="Recommendations")
    ss.register_dependency("cfg", dict, description="Configuration")
    st.markdown("top")
    if form == "decorator":

        @ss.guard()
        def part() -> str:
            st.markdown("before")
            ss.get_dependency("recs")
            st.markdown("after")
            return "returned"

        st.markdown(f"part gave {part()}")
    elif form == "block":
        with ss.guard():
            st.markdown("before")
            ss.get_dependency("recs")
            st.markdown("after")
    elif form == "require":  # the warning guard() has to match
        ss.require("recs")
    else:  # nested: the inner guard handles it, the outer block goes on
        with ss.guard():
            ss.get_dependency("cfg")
            with ss.guard():
                st.markdown("before")
                ss.get_dependency("recs")
                st.markdown("after")
            st.markdown("outer goes on")
    st.markdown("PAGE OK")


@pytest.mark.parametrize(
    ("form", "shown"),
    [
        ("decorator", ["top", "before", "part gave None", "PAGE OK"]),
        ("block", ["top", "before", "PAGE OK"]),
        ("nested", ["top", "before", "outer goes on", "PAGE OK"]),
    ],
)
def test_guard_turns_an_optional_dependency_into_requires_warning(
    form: str, shown: list[str]
) -> None:
    at = run(optional_guarded_page, form=form)
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error and labels(at) == []  # no recovery panel, no Retry
    assert markdown(at) == shown  # the rest of the block skipped, the page after it goes on

    # One warning, require()'s own.
    assert [w.value for w in at.warning] == [
        "**Recommendations** is unavailable: `could not be built (TimeoutError: "
        "recommendations service timed out)`. The parts of this page that need it are "
        "turned off."
    ]
    required = run(optional_guarded_page, form="require")
    assert [(w.value, w.icon) for w in at.warning] == [
        (w.value, w.icon) for w in required.warning]


def test_get_dependency_outside_a_guard_still_raises_for_an_optional_one() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss
        from safestate.errors import DependencyNotReady

        ss.register_dependency("recs", lambda: 1 / 0, required=False)
        try:
            ss.get_dependency("recs")
        except DependencyNotReady as exc:
            st.markdown(f"raised for {exc.name}")

    at = run(app)
    assert markdown(at) == ["raised for recs"]
    assert not at.warning and not at.error


def test_guard_shows_the_panel_for_a_required_dependency_failing_on_an_optional_one() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("recs", lambda: 1 / 0, required=False)
        ss.register_dependency("engine", lambda: ss.get_dependency("recs"),
                               description="The engine")
        with ss.guard():
            ss.get_dependency("engine")
        st.markdown("PAGE OK")

    at = run(app)
    assert not at.exception
    assert "The engine" in at.error[0].value and not at.warning
    assert labels(at) == ["Retry", "Reset my session"]
    assert markdown(at) == []


def test_guard_lets_other_errors_through() -> None:
    def app() -> None:
        import safestate as ss

        with ss.guard():
            raise ValueError("a real bug")

    at = run(app)
    assert at.exception and "a real bug" in at.exception[0].message


def test_ensure_session_initialized_creates_once_and_reports() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        report = ss.ensure_session_initialized(
            {"cart": [], "user": lambda: ss.shared.increment("user_built")}
        )
        st.session_state["report"] = (report.created, report.present, report.ok)
        st.session_state["cart"].append("x")

    at = run(app)
    assert at.session_state["report"] == (["cart", "user"], [], True)
    at.run()
    assert at.session_state["report"] == ([], ["cart", "user"], True)
    assert at.session_state["cart"] == ["x", "x"]
    assert safestate.shared.safe_get("user_built") == 1


def test_defaults_are_copied_per_session() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.ensure_session_initialized({"tags": ss.shared.safe_get("template")})
        st.session_state["tags"].append("mine")

    safestate.shared.safe_set("template", ["base"])
    first, second = run(app), run(app)
    assert first.session_state["tags"] == ["base", "mine"]
    assert second.session_state["tags"] == ["base", "mine"]
    assert safestate.shared.safe_get("template") == ["base"]


def test_a_failing_factory_writes_nothing_and_retry_builds() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def profile() -> dict[str, str]:
            if not ss.shared.safe_get("profile_ok", False):
                raise OSError("profile service down")
            return {"name": "ada"}

        ss.ensure_session_initialized({"theme": "dark", "profile": profile})
        st.markdown(f"PAGE OK {ss.safe_get('profile')['name']}")

    at = run(app)
    assert "profile" in at.error[0].value and "profile service down" in at.error[0].value
    assert "theme" not in at.error[0].value  # only the failed step is named
    assert "theme" not in at.session_state  # all or nothing
    safestate.shared.safe_set("profile_ok", True)
    at.button(key="safestate_recovery_retry").click().run()
    assert markdown(at) == ["PAGE OK ada"]
    assert at.session_state["theme"] == "dark"


@pytest.mark.parametrize("on_missing", ["recover", "raise", "return"])
def test_ensure_with_names_reports_missing_keys(on_missing: str) -> None:
    def app(on_missing: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.safe_set("present", 1)
        try:
            report = ss.ensure_session_initialized(
                ["present", "absent"], on_missing=on_missing
            )
            st.session_state["r"] = (report.ok, report.missing)
        except ss.errors.MissingStateError as exc:
            st.session_state["r"] = ("raised", exc.keys, str(exc))

    at = run(app, on_missing=on_missing)
    if on_missing == "recover":
        assert "`absent` is missing" in at.error[0].value
        assert labels(at) == ["Retry", "Reset my session"]
    elif on_missing == "raise":
        _, keys, message = at.session_state["r"]
        assert keys == ["absent"] and "absent" in message
    else:
        assert at.session_state["r"] == (False, ["absent"])


def test_racing_initializers_run_each_factory_once() -> None:
    def app() -> None:
        import threading
        import time

        import streamlit as st
        from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

        import safestate as ss

        def slow(counter: str):  # type: ignore[no-untyped-def]
            def build() -> object:
                ss.shared.increment(counter)
                time.sleep(0.02)  # widen the window in which a second builder could start
                return object()

            return build

        ss.register_dependency("svc", slow("session_builds"))
        ss.register_dependency("pool", slow("app_builds"), scope="app")
        key_factory = slow("key_builds")
        ctx = get_script_run_ctx()
        seen: list[tuple[int, int, int]] = []
        start = threading.Barrier(8)

        def racer() -> None:
            start.wait(10)
            ss.ensure_session_initialized({"k": key_factory})
            seen.append((id(ss.get_dependency("svc")), id(ss.get_dependency("pool")),
                         id(ss.safe_get("k"))))

        threads = [threading.Thread(target=racer) for _ in range(8)]
        for t in threads:
            add_script_run_ctx(t, ctx)
            t.start()
        for t in threads:
            t.join(30)
        st.session_state["distinct"] = [len(set(column)) for column in zip(*seen, strict=True)]
        st.session_state["n"] = len(seen)

    at = run(app)
    assert not at.exception
    assert at.session_state["n"] == 8
    assert at.session_state["distinct"] == [1, 1, 1]
    for counter in ("session_builds", "app_builds", "key_builds"):
        assert safestate.shared.safe_get(counter) == 1, counter


def test_design_aliases() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("caso_uso_maestro", lambda: "use-case")
        ss.register_dependency("contenedor", lambda: {"container": True})
        ss.register_dependency("ia_system", lambda: "model",
                               health_check=lambda m: ss.shared.safe_get("ia_healthy", False))
        st.session_state["r"] = (
            ss.session_validator.get_caso_uso_maestro(validate=True),
            ss.session_validator.get_contenedor(),
            ss.session_validator.is_ia_system_ready(),
        )
        ss.ensure_session_initialized(["caso_uso_maestro", "contenedor"])
        st.markdown("PAGE OK")

    at = run(app)
    assert at.session_state["r"] == ("use-case", {"container": True}, False)
    assert markdown(at) == ["PAGE OK"]
    assert at.session_state["caso_uso_maestro"] == "use-case"  # plain st.session_state sees it
    safestate.shared.safe_set("ia_healthy", True)
    at.run()
    assert at.session_state["r"][2] is True


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        ("register_dependency('orders', 'not callable')", TypeError, ["orders", "callable"]),
        ("register_dependency('orders', dict, health_check=1)", TypeError, ["health_check"]),
        ("register_dependency('orders', dict, scope='user')", ValueError, ["scope", "'user'"]),
        ("register_dependency(7, dict)", InvalidKeyError, ["int"]),
        ("register_dependency('', dict)", EmptyKeyError, ["''"]),
        ("get_dependency('nope')", UnknownDependencyError, ["nope", "register_dependency"]),
        ("session_validator.is_ready('nope')", UnknownDependencyError, ["nope"]),
        ("ensure_session_initialized([3])", InvalidKeyError, ["int"]),
        ("ensure_session_initialized(['a'], on_missing='ignore')", ValueError, ["on_missing"]),
        ("session_validator.health_report('world')", ValueError, ["'world'"]),
    ],
)
def test_bad_input_is_named_and_changes_nothing(
    call: str, error: type[Exception], words: list[str]
) -> None:
    def app(call: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.safe_set("kept", [1, 2])
        before = (ss.session_validator.dependencies.names(), ss.session_manager.keys(),
                  dict(ss.session_manager.schema.fields))
        try:
            eval(f"ss.{call}", {"ss": ss})
        except Exception as exc:
            st.session_state["error"] = (type(exc), str(exc))
        after = (ss.session_validator.dependencies.names(),
                 [k for k in ss.session_manager.keys() if k != "error"],
                 dict(ss.session_manager.schema.fields))
        st.session_state["unchanged"] = after == before and ss.safe_get("kept") == [1, 2]

    at = run(app, call=call)
    kind, message = at.session_state["error"]
    assert issubclass(kind, error), message
    for word in words:
        assert word in message
    assert at.session_state["unchanged"]


def test_validate_session_dependencies_reports_each_and_renders() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("good", lambda: [1, 2], description="Good one")
        ss.register_dependency("bad", lambda: {}, health_check=lambda v: bool(v))
        ss.register_dependency("opt", lambda: 1 / 0, required=False)
        report = ss.session_validator.validate_session_dependencies()
        report.render()
        st.session_state["r"] = (
            report.ok,
            [s.name for s in report.failing],
            [s.name for s in report.degraded],
            (report["good"].present, report["good"].healthy,
             report["good"].type_name, report["good"].checked_at is not None),
            report["opt"].error,
        )

    at = run(app)
    ok, failing, degraded, good, opt_error = at.session_state["r"]
    assert ok is False
    assert "bad" in failing and "good" not in failing
    assert "opt" in degraded
    assert good == (True, True, "list", True)
    assert "ZeroDivisionError" in opt_error
    assert at.error and "bad" in at.error[0].value
    assert len(at.dataframe) == 1
    # Narrow enough for a page: one status word per dependency, the long reasons below it.
    table = at.dataframe[0].value
    assert list(table.columns) == ["dependency", "scope", "required", "status", "type", "checked"]
    assert dict(zip(table["dependency"], table["status"], strict=True)) == {
        "good": "ready", "bad": "failed", "opt": "failed"}
    reasons = at.caption[0].value.splitlines()
    assert reasons[0] == "- `bad`: `its health check failed`"
    assert reasons[1] == "- `opt` (optional): `ZeroDivisionError: division by zero`"


def test_health_reports_name_keys_never_values() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Auth(BaseModel):
            token: str = "x"

        ss.safe_set("password", "secret-value-123")
        ss.typed(Auth)
        ss.safe_delete("token")  # a declared key that went missing
        session = ss.session_validator.health_report()
        app_wide = ss.session_validator.health_report("app")
        st.session_state["r"] = (session.to_dict(), app_wide.to_dict())
        session.render()
        app_wide.render()

    at = run(app)
    assert not at.exception
    session, app_wide = at.session_state["r"]
    assert "secret-value-123" not in repr(session) + repr(app_wide)
    row = next(k for k in session["keys"] if k["key"] == "password")
    assert row["type"] == "str" and row["length"] == len("secret-value-123")
    assert "token" in session["missing_keys"] and not session["ok"]
    assert app_wide["sessions"] >= 1
    assert app_wide["sessions_missing_keys"].get("token", 0) >= 1


def test_a_failed_build_makes_health_reports_fail() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("broken", lambda: 1 / 0, description="Broken")
        st.session_state["ready"] = ss.session_validator.is_ready("broken")
        validator = ss.session_validator
        session, app_wide = validator.health_report(), validator.health_report("app")
        st.session_state["r"] = (session.ok, app_wide.ok,
                                 app_wide.sessions_failing_dependencies.get("broken", 0))

    at = run(app)
    assert at.session_state["ready"] is False
    assert at.session_state["r"][:2] == (False, False)
    assert at.session_state["r"][2] >= 1


def test_optional_dependency_named_in_ensure_degrades() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("opt", lambda: 1 / 0, required=False)
        report = ss.ensure_session_initialized(["opt"])
        st.session_state["r"] = (report.ok, report.degraded, report.missing)
        st.markdown("PAGE OK")

    at = run(app)
    assert not at.error
    assert at.session_state["r"] == (True, ["opt"], [])
    assert markdown(at) == ["PAGE OK"]


@pytest.mark.parametrize(
    "call",
    [
        "require('x')",
        "ensure_session_initialized({'x': 1})",
        "ensure_session_initialized(['x'])",
        "session_validator.health_report()",
        "session_validator.reset_session()",
        "session_validator.validate_session_dependencies()",
        "get_dependency('dep')",
    ],
)
def test_page_calls_outside_a_script_run_say_so(call: str) -> None:
    safestate.register_dependency("dep", dict)
    error = raised_in_thread(lambda: eval(f"ss.{call}", {"ss": safestate}))
    assert isinstance(error, safestate.errors.NoSessionError)
    name = call.split("(")[0].split(".")[-1]
    assert f"{name}() draws on or checks the page of a script run" in str(error)


# -- hardening: dependency cycles, bounded messages --


def _recorded_get(results: dict[str, object]) -> Any:
    """A thread target: get_dependency(name), its value or its error recorded in ``results``."""

    def call(name: str) -> None:
        try:
            results[name] = safestate.get_dependency(name)
        except Exception as exc:  # recorded for the test's assertions
            results[name] = exc

    return call



def cycle_app(names: list[str], scopes: list[str]) -> None:
    """Each name's factory needs the next one, the last needs the first: a cycle, until the
    shared flag ``<first>_fixed`` makes the last one build on its own."""
    import streamlit as st

    import safestate as ss

    def factory(i: int):  # type: ignore[no-untyped-def]
        def build() -> object:
            if i == len(names) - 1 and ss.shared.safe_get(f"{names[0]}_fixed", False):
                return names[i]
            return (names[i], ss.get_dependency(names[(i + 1) % len(names)]))

        return build

    for i, (name, scope) in enumerate(zip(names, scopes, strict=True)):
        ss.register_dependency(name, factory(i), scope=scope)
    try:
        st.session_state["value"] = ss.get_dependency(names[0])
        st.session_state.pop("error", None)
    except ss.errors.DependencyNotReady as exc:
        st.session_state["error"] = (exc.name, exc.reason, str(exc))
        report = ss.session_validator.validate_session_dependencies(build=False)
        st.session_state["recorded"] = [report[n].error for n in names]


CYCLES = {
    "self_session": ["session"],
    "self_app": ["app"],
    "session": ["session", "session"],
    "app": ["app", "app"],
    "app_session": ["app", "session"],
    "session_app": ["session", "app"],
    "app_session_app": ["app", "session", "app"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(CYCLES))
def test_a_dependency_cycle_is_named_and_leaves_nothing_locked(case: str) -> None:
    scopes = CYCLES[case]
    names = [f"cyc{i}" for i in range(len(scopes))]
    cycle = " -> ".join(repr(n) for n in [*names, names[0]])
    at = AppTest.from_function(cycle_app, kwargs={"names": names, "scopes": scopes},
                               default_timeout=20).run()
    assert not at.exception, [e.message for e in at.exception]
    name, reason, message = at.session_state["error"]
    assert (name, reason) == (names[0], f"depends on itself: {cycle}")
    assert message.endswith(f"is not ready: depends on itself: {cycle}")
    assert all(e is not None and "depends on itself" in e for e in at.session_state["recorded"])

    # Every lock was released: fixed factories build in this session and in another one.
    safestate.shared.safe_set(f"{names[0]}_fixed", True)
    expected: object = names[-1]
    for n in reversed(names[:-1]):
        expected = (n, expected)
    at.run()
    assert not at.exception and "error" not in at.session_state
    assert at.session_state["value"] == expected
    other = AppTest.from_function(cycle_app, kwargs={"names": names, "scopes": scopes},
                                  default_timeout=20).run()
    assert not other.exception and other.session_state["value"] == expected


@pytest.mark.timeout(120)
def test_two_threads_building_an_app_cycle_from_both_ends_both_end() -> None:
    import threading

    a, b = "pair_a", "pair_b"
    a_started, b_started, fixed = threading.Event(), threading.Event(), threading.Event()

    def build_a() -> object:
        a_started.set()
        b_started.wait(10)  # both builds are under way before either needs the other
        return ("a", safestate.get_dependency(b))

    def build_b() -> object:
        b_started.set()
        a_started.wait(10)
        return "b" if fixed.is_set() else ("b", safestate.get_dependency(a))

    safestate.register_dependency(a, build_a, scope="app")
    safestate.register_dependency(b, build_b, scope="app")
    results: dict[str, object] = {}
    call = _recorded_get(results)

    threads = [threading.Thread(target=call, args=(n,), daemon=True) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "the two builders deadlocked"
    errors = [r for r in results.values() if isinstance(r, safestate.errors.DependencyNotReady)]
    assert errors and len(results) == 2, results
    for error in errors:
        assert error.reason.startswith("depends on itself: "), error.reason
        assert repr(a) in error.reason and repr(b) in error.reason

    # No lock of the registry is left held: a third call builds with fixed factories.
    fixed.set()
    third = threading.Thread(target=call, args=(a,), daemon=True)
    third.start()
    third.join(30)
    assert not third.is_alive(), "a lock was left held"
    assert results[a] == ("a", "b")


@pytest.mark.timeout(120)
def test_a_factory_needing_another_dependency_still_builds_across_threads() -> None:
    import threading

    outer, inner = "outer", "inner"
    outer_started, inner_may_finish = threading.Event(), threading.Event()

    def build_outer() -> object:
        outer_started.set()
        return ("outer", safestate.get_dependency(inner))  # waits for the other thread

    def build_inner() -> object:
        inner_may_finish.wait(10)
        return "inner"

    safestate.register_dependency(outer, build_outer, scope="app")
    safestate.register_dependency(inner, build_inner, scope="app")
    results: dict[str, object] = {}
    call = _recorded_get(results)

    inner_thread = threading.Thread(target=call, args=(inner,), daemon=True)
    inner_thread.start()
    outer_thread = threading.Thread(target=call, args=(outer,), daemon=True)
    outer_thread.start()
    assert outer_started.wait(10)
    inner_may_finish.set()
    for t in (inner_thread, outer_thread):
        t.join(30)
    assert results == {inner: "inner", outer: ("outer", "inner")}


def test_the_demos_use_case_needing_its_container_still_builds() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.register_dependency("contenedor", lambda: {"container": True})
        ss.register_dependency("caso_uso_maestro",
                               lambda: ("use-case", ss.session_validator.get_contenedor()))
        ss.register_dependency(
            "pool", lambda: ("pool", ss.session_validator.get_caso_uso_maestro()), scope="app")
        st.session_state["r"] = (ss.session_validator.get_caso_uso_maestro(),
                                 ss.get_dependency("pool"))

    at = run(app)
    assert not at.exception, [e.message for e in at.exception]
    use_case = ("use-case", {"container": True})
    assert at.session_state["r"] == (use_case, ("pool", use_case))


def test_unknown_dependency_message_is_bounded() -> None:
    from safestate.dependencies import DependencyRegistry

    registry = DependencyRegistry(safestate.session_manager)
    registry.register("x" * 1_000_000, dict)
    for i in range(10_000):
        registry.register(f"dep_{i}", dict)
    with pytest.raises(UnknownDependencyError) as info:
        registry.get("y" * 1_000_000)
    message = str(info.value)
    assert len(message) < 1_000, len(message)
    assert "'yyyy" in message and "'xxxx" in message
    assert "'dep_0'" in message and "'dep_8'" in message and "'dep_9999'" not in message
    assert "and 9991 more" in message
    assert "register_dependency(" in message


def test_a_failing_factorys_credentials_are_masked() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def connect() -> None:
            raise ConnectionError("redis://:p@ss@host/0?password=hunter2")

        ss.register_dependency("cache", connect)
        try:
            ss.get_dependency("cache")
        except ss.errors.DependencyNotReady as exc:
            st.session_state["message"] = str(exc)
        report = ss.session_validator.validate_session_dependencies(build=False)
        st.session_state["recorded"] = report["cache"].error

    at = run(app)
    assert not at.exception, [e.message for e in at.exception]
    message, recorded = at.session_state["message"], at.session_state["recorded"]
    for text in (message, recorded):
        assert "ConnectionError" in text and "host/0" in text
        for secret in ("p@ss", "ss@host", "hunter2"):
            assert secret not in text, text


@pytest.mark.parametrize("bad", [5, None, 3.5, b"cart", object()])
def test_ensure_session_initialized_of_neither_names_nor_a_mapping_is_a_named_error(
    bad: object,
) -> None:
    def app(bad: object) -> None:
        import streamlit as st

        import safestate as ss

        try:
            ss.ensure_session_initialized(bad)  # type: ignore[arg-type]
        except ss.errors.InvalidArgumentError as exc:
            st.session_state["r"] = (isinstance(exc, TypeError), str(exc))

    at = AppTest.from_function(app, kwargs={"bad": bad}, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    is_type_error, message = at.session_state["r"]
    assert is_type_error and type(bad).__name__ in message
    assert "key names" in message and "mapping" in message


#: An exception message that, read as Markdown, would draw an image fetched from anywhere, a
#: link, bold text and a heading.
HOSTILE = ("see ![x](http://evil.example/p.png) [the fix](http://evil.example) **now**\n\n"
           "# Big `tick`")


def hostile_page(what: str, message: str) -> None:
    import safestate as ss

    def broken() -> None:
        raise RuntimeError(message)

    if what == "optional":
        ss.register_dependency("recs", broken, required=False, description="Recommendations")
        ss.require("recs")
    elif what == "required":
        ss.register_dependency("db", broken, description="Database")
        ss.require("db")
    elif what == "default":
        ss.ensure_session_initialized({"cart": broken})
        ss.require("cart")
    else:
        ss.register_dependency("db", broken, required=False)
        ss.session_validator.validate_session_dependencies().render()


@pytest.mark.parametrize(("what", "shown"), [
    ("optional", "warning"), ("required", "error"), ("default", "error"), ("report", "caption"),
])
def test_an_exception_message_is_shown_as_itself_never_as_markdown(what: str,
                                                                   shown: str) -> None:
    """Streamlit renders an alert's text as Markdown: an exception's message goes in a code
    span, on one line, so it draws no image, link or heading."""
    from markdown_it import MarkdownIt

    at = AppTest.from_function(hostile_page, args=(what, HOSTILE), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    (element,) = [e for e in getattr(at, shown) if "evil" in e.value]
    html = MarkdownIt("commonmark").render(element.value)
    assert "<a " not in html and "<img" not in html and "<h1" not in html
    # Whole, in one code span (HOSTILE has nothing HTML would escape).
    one_line = re.escape(f"RuntimeError: {' '.join(HOSTILE.split())}")
    assert re.search(f"<code>[^<]*{one_line}[^<]*</code>", html), html
