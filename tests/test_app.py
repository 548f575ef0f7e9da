"""The composition root and the package surface: one app built in one place, bound by name."""

from __future__ import annotations

import pathlib
import threading

import pytest
from conftest import run_app, wait_for
from structure import private_writes

import safestate
from safestate.app import App, build_app
from safestate.identity import namespace_for
from safestate.stores import open_store

SRC = pathlib.Path(__file__).parent.parent / "src"


def test_no_module_writes_another_objects_private_attributes() -> None:
    # `x._name = ...` with x other than self/cls: wiring that bypasses constructors.
    assert private_writes(SRC) == []


def test_the_top_level_is_small_and_every_name_is_there() -> None:
    assert len(safestate.__all__) <= 25
    assert sorted(set(safestate.__all__)) == sorted(safestate.__all__)
    for name in safestate.__all__:
        assert getattr(safestate, name) is not None, name


def test_the_designs_contract_stays_importable() -> None:
    manager = safestate.session_manager
    for name in ("safe_set", "safe_get", "safe_update", "safe_delete", "safe_exists",
                 "session_lock", "_get_session_id", "with_session_lock", "cleanup_old_sessions",
                 "get_session_stats"):
        assert callable(getattr(manager, name)), name
    validator = safestate.session_validator
    for name in ("ensure_session_initialized", "get_caso_uso_maestro", "is_ia_system_ready",
                 "validate_session_dependencies"):
        assert callable(getattr(validator, name)), name
    assert isinstance(manager, safestate.SessionStateManager)
    assert isinstance(validator, safestate.SessionValidator)


def test_the_package_names_follow_the_app_in_use(fresh_app: App) -> None:
    assert safestate.current_app() is fresh_app
    assert safestate.session_manager is fresh_app.manager
    assert safestate.shared is fresh_app.shared
    assert safestate.session_validator is fresh_app.validator
    assert safestate.safe_set.__self__ is fresh_app.manager  # type: ignore[attr-defined]
    assert safestate.typed.__self__ is fresh_app.validator  # type: ignore[attr-defined]
    other = build_app()
    try:
        assert safestate.testing.use_app(other) is fresh_app
        assert safestate.increment.__self__ is other.manager  # type: ignore[attr-defined]
        assert safestate.configure.__self__ is other.configuration  # type: ignore[attr-defined]
    finally:
        safestate.testing.use_app(fresh_app)
        other.close()


def test_two_apps_share_nothing() -> None:
    first, second = build_app(), build_app()
    try:
        first.shared.safe_set("board", [1])
        assert second.shared.safe_get("board") is None
        first.configuration.configure(persist=["cart"])
        settings = second.configuration.settings  # the deployment's (its shared was read)
        assert settings is not None and settings.persist == ()
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)
def test_reset_my_session_keeps_persistence_working_for_a_worker(store_url: str) -> None:
    # "Reset my session" forgets what the session's dependencies were checked for; it must
    # not forget whose state the session is. A worker that writes right after a reset
    # (before the script's next run) must reach the same identity's namespace.
    def app(url: str) -> None:
        import threading

        import streamlit as st

        import safestate as ss

        def who() -> str:
            return "alice"

        ss.configure(store=url, identity=who, persist=["notes", "count"])
        ss.safe_set("notes", "before the reset")
        handle = ss.current()
        st.session_state["cleared"] = ss.session_validator.reset_session()

        def work() -> None:
            handle.safe_set("notes", "written by a worker after the reset")
            handle.increment("count")

        worker = threading.Thread(target=work)
        worker.start()
        worker.join(30)

    run_app(app, url=store_url)
    store = open_store(store_url)
    try:
        saved = store.load(namespace_for("custom:alice")).values
    finally:
        store.close()
    assert saved == {"notes": b'"written by a worker after the reset"', "count": b"1"}


def test_an_app_nobody_holds_goes_with_its_sweeper() -> None:
    import gc
    import weakref

    app = build_app(sweep_interval=0.05)
    with app.manager.enter_session("s1", {}, "seed")[0]:  # a first call starts the sweeper
        pass
    sweepers = [t for t in threading.enumerate() if t.name == "safestate-sweeper"]
    gone = weakref.ref(app.manager)
    del app
    gc.collect()
    assert gone() is None
    wait_for(lambda: not any(t.is_alive() for t in sweepers), "the sweepers to stop")


def test_a_persisted_session_record_is_freed_without_the_cycle_collector(tmp_path: pathlib.Path,
                                                                        ) -> None:
    import gc

    from safestate._record import SessionRecord
    from safestate.manager import new_record
    from safestate.persistence import PersistedSession, SessionViews

    app = build_app()
    try:
        app.configuration.configure(store=f"sqlite:///{tmp_path / 's.db'}", persist=["cart"])
        sessions = app.configuration.backends.get().sessions
        assert sessions is not None
        gc.collect()
        gc.disable()
        try:
            record: SessionRecord | None = new_record("s1", {})
            assert record is not None
            sessions.session_view(record)  # a worker's view, kept in the record
            assert record.peek(SessionViews) is not None
            assert record.peek(PersistedSession) is not None
            record = None  # what the registry does when the session has ended
            assert gc.collect() == 0  # nothing left for the cycle collector: no cycle
        finally:
            gc.enable()
    finally:
        app.close()
