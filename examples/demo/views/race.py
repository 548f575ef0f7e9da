import inspect
import time

import streamlit as st

import safestate

ROUNDS = 100

st.title("Race")
st.markdown(
    f"Three `@st.fragment(parallel=True)` bodies each add 1, {ROUNDS} times, to two counters at "
    "once: one through plain `st.session_state`, one through `safestate.mutate`. Each update "
    "reads, does a little work, then writes, as real code does."
)


def body() -> None:
    for _ in range(ROUNDS):
        value = st.session_state.get("race_plain", 0)
        time.sleep(0.001)  # the "little work" between read and write
        st.session_state["race_plain"] = value + 1
        safestate.mutate("race_safe", lambda v: (time.sleep(0.001), v + 1)[1], 0)


# Parallel fragments came in Streamlit 1.58: before it, say so rather than fail.
PARALLEL = "parallel" in inspect.signature(st.fragment).parameters
if not PARALLEL:
    st.info(f"The race needs `st.fragment(parallel=True)`, which came in Streamlit 1.58; this "
            f"server runs Streamlit {st.__version__}. Every other page works here.",
            icon=":material/info:")
if st.button("Run the race", key="run_race", type="primary", disabled=not PARALLEL):
    st.session_state["race_plain"] = 0
    safestate.safe_set("race_safe", 0)
    safestate.safe_set("race_started", True)
    # In this run only: a later rerun of the page (another click, a live update) shows the
    # results without racing again on top of them.
    lanes = st.columns(3)
    for lane in lanes:
        with lane:
            st.fragment(parallel=True)(body)()


def outcome(html_id: str, lost: int) -> None:
    """Say how many updates a counter lost: red when some were, green when none."""
    text = f"{lost} update{'s' if lost != 1 else ''} lost" if lost else "none lost"
    kind = "ss-bad" if lost else "ss-good"
    st.markdown(f"<span class='ss-outcome {kind}' id='{html_id}'>{text}</span>",
                unsafe_allow_html=True)


@st.fragment(run_every=1.0)
def results() -> None:
    if not safestate.safe_get("race_started", False):
        st.caption("Press the button: the three fragments start at once.")
        return
    expected = 3 * ROUNDS
    plain = st.session_state.get("race_plain", 0)
    safe = safestate.safe_get("race_safe", 0)
    finished = safe == expected  # safestate's counter ends last: it waits its turn
    a, b = st.columns(2)
    # The outcome is a line of its own, not a metric delta: a delta draws an arrow (up for a
    # positive number, so "107 updates lost" came out as a rise).
    with a:
        st.metric("Plain st.session_state", f"{plain} / {expected}")
        if finished:
            outcome("race-plain-outcome", expected - plain)
    with b:
        st.metric("safestate.mutate", f"{safe} / {expected}")
        if finished:
            outcome("race-safe-outcome", expected - safe)


results()
