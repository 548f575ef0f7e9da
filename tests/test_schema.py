"""Typed session schemas (pydantic primary, dataclasses too) inside real script runs."""

from __future__ import annotations

import pytest
from conftest import run_app as run

from safestate.errors import SchemaConflictError, StateValidationError
from safestate.schema import SchemaRegistry


def test_pydantic_schema_defaults_attributes_and_round_trip() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Checkout(BaseModel):
            s1_step: int = 0
            s1_cart: list[str] = []
            s1_coupon: str | None = None

        state = ss.typed(Checkout)
        state.s1_step += 1
        state.s1_cart.append("book")
        ss.safe_set("s1_coupon", "SPRING")  # the untyped API sees the same keys
        st.session_state["r"] = (
            state.s1_step,
            ss.safe_get("s1_step"),
            state.s1_coupon,
            st.session_state["s1_cart"],
            state.to_model().s1_cart,  # type: ignore[attr-defined]
        )

    at = run(app)
    assert at.session_state["r"] == (1, 1, "SPRING", ["book"], ["book"])
    at.run()
    assert at.session_state["r"][0] == 2
    assert at.session_state["r"][3] == ["book", "book"]


def test_mutable_defaults_are_not_shared_between_sessions() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Basket(BaseModel):
            s2_items: list[str] = []

        state = ss.typed(Basket)
        state.s2_items.append("mine")
        st.session_state["r"] = list(state.s2_items)

    assert run(app).session_state["r"] == ["mine"]
    assert run(app).session_state["r"] == ["mine"]  # a fresh session starts from []


@pytest.mark.parametrize(
    "write",
    [
        "state.s3_age = 'forty'",
        "ss.safe_set('s3_age', 'forty')",
        "ss.safe_update({'s3_name': 'ok', 's3_age': 'forty'})",
        "ss.mutate('s3_age', lambda v: str(v))",
        "ss.increment('s3_age', by=0.5)",
        "exec('with ss.transaction() as tx:\\n    tx[\"s3_name\"] = \"ok\"\\n"
        "    tx[\"s3_age\"] = \"forty\"')",
    ],
)
def test_wrong_type_writes_are_rejected_and_change_nothing(write: str) -> None:
    def app(write: str) -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Person(BaseModel):
            s3_name: str = "ada"
            s3_age: int = 36

        state = ss.typed(Person)
        try:
            exec(write, {"ss": ss, "state": state})
        except ss.errors.StateValidationError as exc:
            st.session_state["error"] = (exc.key, exc.expected, str(exc))
        st.session_state["after"] = (state.s3_name, state.s3_age)

    at = run(app, write=write)
    key, expected, message = at.session_state["error"]
    assert key == "s3_age" and expected == "int"
    assert "'s3_age' must be int (declared in Person)" in message
    assert "Nothing was written" in message
    assert "forty" not in message  # values stay out of messages (they end up in logs)
    assert at.session_state["after"] == ("ada", 36)


def test_typos_and_required_fields_fail_loudly() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Account(BaseModel):
            s4_user_id: str  # required: no default
            s4_plan: str = "free"

        state = ss.typed(Account)
        errors = []
        for attempt in ("state.s4_usr_id = 'x'", "state.s4_pln", "state.s4_user_id"):
            try:
                exec(attempt, {"state": state})
            except (AttributeError, ss.errors.MissingStateError) as exc:
                errors.append((type(exc).__name__, str(exc)))
        state.s4_user_id = "u-1"
        st.session_state["r"] = (errors, state.s4_user_id, state.s4_plan)

    at = run(app)
    errors, user_id, plan = at.session_state["r"]
    assert errors[0][0] == "AttributeError" and "s4_usr_id" in errors[0][1]
    assert "s4_user_id" in errors[0][1]  # lists the real fields
    assert errors[1][0] == "AttributeError"
    assert errors[2][0] == "MissingStateError" and "s4_user_id" in errors[2][1]
    assert (user_id, plan) == ("u-1", "free")


def test_dataclass_schema_works_too() -> None:
    def app() -> None:
        import dataclasses

        import streamlit as st

        import safestate as ss

        @dataclasses.dataclass
        class Prefs:
            s5_theme: str = "light"
            s5_tags: list[str] = dataclasses.field(default_factory=list)

        prefs = ss.typed(Prefs)
        prefs.s5_tags.append("a")
        try:
            prefs.s5_theme = 3  # type: ignore[assignment]
        except ss.errors.StateValidationError as exc:
            st.session_state["error"] = str(exc)
        st.session_state["r"] = (prefs.s5_theme, prefs.s5_tags)

    at = run(app)
    assert at.session_state["r"] == ("light", ["a"])
    assert "'s5_theme' must be str (declared in Prefs)" in at.session_state["error"]


def test_widget_bound_to_a_declared_key_starts_from_its_default() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Form(BaseModel):
            s6_city: str = "Lima"

        form = ss.typed(Form)
        st.text_input("City", key="s6_city")
        st.session_state["echo"] = form.s6_city

    at = run(app)
    assert at.text_input[0].value == "Lima"
    at.text_input[0].set_value("Quito").run()
    assert at.session_state["echo"] == "Quito"


def test_worker_threads_use_a_typed_handle() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Job(BaseModel):
            s7_progress: int = 0

        ss.typed(Job)

        def work(handle: ss.manager.SessionHandle) -> None:
            job = ss.typed(Job, scope=handle)
            for _ in range(50):
                job.s7_progress += 1  # not atomic on its own: under the lock below
            try:
                job.s7_progress = "done"  # type: ignore[assignment]
            except ss.errors.StateValidationError:
                handle.safe_set("s7_rejected", True)

        def locked_work(handle: ss.manager.SessionHandle) -> None:
            with handle.session_lock():
                work(handle)

        threads = [ss.start_thread(locked_work) for _ in range(4)]
        for t in threads:
            t.join(30)
        st.session_state["r"] = (ss.safe_get("s7_progress"), ss.safe_get("s7_rejected"))

    at = run(app)
    assert at.session_state["r"] == (200, True)


def test_conflicting_declarations_and_non_models_are_refused() -> None:
    from pydantic import BaseModel

    class A(BaseModel):
        s8_value: int = 0

    class B(BaseModel):
        s8_value: str = ""

    registry = SchemaRegistry()
    registry.declare(A)
    with pytest.raises(SchemaConflictError, match=r"s8_value.*int in A.*str in B"):
        registry.declare(B)
    assert registry.fields["s8_value"].model == "A"  # unchanged
    with pytest.raises(TypeError, match="pydantic BaseModel subclass or a dataclass"):
        registry.declare(dict)
    with pytest.raises(StateValidationError):
        registry.check("s8_value", "zero")
    assert registry.check("undeclared", object) is object


def test_strictness_follows_the_model_config() -> None:
    from pydantic import BaseModel, ConfigDict

    class Lax(BaseModel):
        model_config = ConfigDict(strict=False)
        s9_count: int = 0

    registry = SchemaRegistry()
    registry.declare(Lax)
    assert registry.check("s9_count", "5") == 5  # the model asked for coercion


def test_pydantic_field_constraints_apply() -> None:
    from pydantic import BaseModel, Field

    class Stock(BaseModel):
        s10_qty: int = Field(0, ge=0)
        s10_sku: str = Field("x", max_length=4)

    registry = SchemaRegistry()
    registry.declare(Stock)
    with pytest.raises(StateValidationError, match="greater than or equal to 0"):
        registry.check("s10_qty", -5)
    with pytest.raises(StateValidationError, match="at most 4 characters"):
        registry.check("s10_sku", "too-long")
    assert registry.check("s10_qty", 3) == 3


def test_models_defined_in_the_script_survive_reruns() -> None:
    def app() -> None:
        import enum

        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Size(enum.Enum):  # defined anew on every run, like everything in a script
            S = "s"
            M = "m"

        class Item(BaseModel):
            name: str
            size: Size = Size.M

        class Cart(BaseModel):
            s11_items: list[Item] = []

        cart = ss.typed(Cart)
        # Instances made this run (a stored one is of last run's class: see README, Limits).
        cart.s11_items = [Item(name="tee"), Item(name="cap", size=Size.S)]
        st.session_state["r"] = (len(cart.s11_items),
                                 len(ss.session_manager.schema._models))

    at = run(app)
    first_models = at.session_state["r"][1]
    at.run()
    at.run()
    assert not at.exception
    assert at.session_state["r"] == (2, first_models)  # no conflict, no pile-up


def test_a_deleted_declared_key_reads_as_its_default_again() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Pager(BaseModel):
            s12_page: int = 1

        pager = ss.typed(Pager)
        pager.s12_page = 4
        del pager.s12_page
        st.session_state["r"] = pager.s12_page

    assert run(app).session_state["r"] == 1


@pytest.mark.parametrize("bad", [None, 5, "AppState", [1, 2]])
def test_typed_of_something_that_is_not_a_class_is_a_named_error(bad: object) -> None:
    import safestate

    with pytest.raises(safestate.errors.InvalidArgumentError) as info:
        safestate.typed(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert "typed() takes a class" in str(info.value) and type(bad).__name__ in str(info.value)
