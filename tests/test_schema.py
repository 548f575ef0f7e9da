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
            step: int = 0
            cart: list[str] = []
            coupon: str | None = None

        state = ss.typed(Checkout)
        state.step += 1
        state.cart += ["book"]
        ss.safe_set("coupon", "SPRING")  # the untyped API sees the same keys
        st.session_state["r"] = (
            state.step,
            ss.safe_get("step"),
            state.coupon,
            st.session_state["cart"],
            state.to_model().cart,  # type: ignore[attr-defined]
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
            items: list[str] = []

        state = ss.typed(Basket)
        state.items += ["mine"]
        st.session_state["r"] = list(state.items)

    assert run(app).session_state["r"] == ["mine"]
    assert run(app).session_state["r"] == ["mine"]  # a fresh session starts from []


@pytest.mark.parametrize(
    "write",
    [
        "state.age = 'forty'",
        "ss.safe_set('age', 'forty')",
        "ss.safe_update({'name': 'ok', 'age': 'forty'})",
        "ss.mutate('age', lambda v: str(v))",
        "ss.increment('age', by=0.5)",
        "exec('with ss.transaction() as tx:\\n    tx[\"name\"] = \"ok\"\\n"
        "    tx[\"age\"] = \"forty\"')",
    ],
)
def test_wrong_type_writes_are_rejected_and_change_nothing(write: str) -> None:
    def app(write: str) -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Person(BaseModel):
            name: str = "ada"
            age: int = 36

        state = ss.typed(Person)
        try:
            exec(write, {"ss": ss, "state": state})
        except ss.errors.StateValidationError as exc:
            st.session_state["error"] = (exc.key, exc.expected, str(exc))
        st.session_state["after"] = (state.name, state.age)

    at = run(app, write=write)
    key, expected, message = at.session_state["error"]
    assert key == "age" and expected == "int"
    assert "'age' must be int (declared in Person)" in message
    assert "Nothing was written" in message
    assert "forty" not in message  # values stay out of messages (they end up in logs)
    assert at.session_state["after"] == ("ada", 36)


def test_typos_and_required_fields_fail_loudly() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Account(BaseModel):
            user_id: str  # required: no default
            plan: str = "free"

        state = ss.typed(Account)
        errors = []
        for attempt in ("state.usr_id = 'x'", "state.pln", "state.user_id"):
            try:
                exec(attempt, {"state": state})
            except (AttributeError, ss.errors.MissingStateError) as exc:
                errors.append((type(exc).__name__, str(exc)))
        state.user_id = "u-1"
        st.session_state["r"] = (errors, state.user_id, state.plan)

    at = run(app)
    errors, user_id, plan = at.session_state["r"]
    assert errors[0][0] == "AttributeError" and "usr_id" in errors[0][1]
    assert "user_id" in errors[0][1]  # lists the real fields
    assert errors[1][0] == "AttributeError"
    assert errors[2][0] == "MissingStateError" and "user_id" in errors[2][1]
    assert (user_id, plan) == ("u-1", "free")


def test_dataclass_schema_works_too() -> None:
    def app() -> None:
        import dataclasses

        import streamlit as st

        import safestate as ss

        @dataclasses.dataclass
        class Prefs:
            theme: str = "light"
            tags: list[str] = dataclasses.field(default_factory=list)

        prefs = ss.typed(Prefs)
        prefs.tags += ["a"]
        try:
            prefs.theme = 3  # type: ignore[assignment]
        except ss.errors.StateValidationError as exc:
            st.session_state["error"] = str(exc)
        st.session_state["r"] = (prefs.theme, prefs.tags)

    at = run(app)
    assert at.session_state["r"] == ("light", ["a"])
    assert "'theme' must be str (declared in Prefs)" in at.session_state["error"]


def test_widget_bound_to_a_declared_key_starts_from_its_default() -> None:
    def app() -> None:
        import streamlit as st
        from pydantic import BaseModel

        import safestate as ss

        class Form(BaseModel):
            city: str = "Lima"

        form = ss.typed(Form)
        st.text_input("City", key="city")
        st.session_state["echo"] = form.city

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
            progress: int = 0

        ss.typed(Job)

        def work(handle: ss.manager.SessionHandle) -> None:
            job = ss.typed(Job, scope=handle)
            for _ in range(50):
                job.progress += 1  # not atomic on its own: under the lock below
            try:
                job.progress = "done"  # type: ignore[assignment]
            except ss.errors.StateValidationError:
                handle.safe_set("rejected", True)

        def locked_work(handle: ss.manager.SessionHandle) -> None:
            with handle.session_lock():
                work(handle)

        threads = [ss.start_thread(locked_work) for _ in range(4)]
        for t in threads:
            t.join(30)
        st.session_state["r"] = (ss.safe_get("progress"), ss.safe_get("rejected"))

    at = run(app)
    assert at.session_state["r"] == (200, True)


def test_conflicting_declarations_and_non_models_are_refused() -> None:
    from pydantic import BaseModel

    class A(BaseModel):
        value: int = 0

    class B(BaseModel):
        value: str = ""

    registry = SchemaRegistry()
    registry.declare(A)
    with pytest.raises(SchemaConflictError, match=r"'value'.*int in A.*str in B"):
        registry.declare(B)
    assert registry.fields["value"].model == "A"  # unchanged
    with pytest.raises(TypeError, match="pydantic BaseModel subclass or a dataclass"):
        registry.declare(dict)
    with pytest.raises(StateValidationError):
        registry.check("value", "zero")
    assert registry.check("undeclared", object) is object


def test_strictness_follows_the_model_config() -> None:
    from pydantic import BaseModel, ConfigDict

    class Lax(BaseModel):
        model_config = ConfigDict(strict=False)
        count: int = 0

    registry = SchemaRegistry()
    registry.declare(Lax)
    assert registry.check("count", "5") == 5  # the model asked for coercion


def test_pydantic_field_constraints_apply() -> None:
    from pydantic import BaseModel, Field

    class Stock(BaseModel):
        qty: int = Field(0, ge=0)
        sku: str = Field("x", max_length=4)

    registry = SchemaRegistry()
    registry.declare(Stock)
    with pytest.raises(StateValidationError, match="greater than or equal to 0"):
        registry.check("qty", -5)
    with pytest.raises(StateValidationError, match="at most 4 characters"):
        registry.check("sku", "too-long")
    assert registry.check("qty", 3) == 3


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
            items: list[Item] = []

        cart = ss.typed(Cart)
        # Instances made this run (a stored one is of last run's class: see docs/limits.md).
        cart.items = [Item(name="tee"), Item(name="cap", size=Size.S)]
        st.session_state["r"] = (len(cart.items),
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
            page: int = 1

        pager = ss.typed(Pager)
        pager.page = 4
        del pager.page
        st.session_state["r"] = pager.page

    assert run(app).session_state["r"] == 1


@pytest.mark.parametrize("bad", [None, 5, "AppState", [1, 2]])
def test_typed_of_something_that_is_not_a_class_is_a_named_error(bad: object) -> None:
    import safestate

    with pytest.raises(safestate.errors.InvalidArgumentError) as info:
        safestate.typed(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert "typed() takes a class" in str(info.value) and type(bad).__name__ in str(info.value)
