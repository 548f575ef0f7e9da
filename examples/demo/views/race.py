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


if st.button("Run the race", key="run_race", type="primary"):
    st.session_state["race_plain"] = 0
    safestate.safe_set("race_safe", 0)
    safestate.safe_set("race_started", True)

if safestate.safe_get("race_started", False):
    lanes = st.columns(3)
    for lane in lanes:
        with lane:
            st.fragment(parallel=True)(body)()


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
    a.metric("Plain st.session_state", f"{plain} / {expected}",
             delta=f"{expected - plain} updates lost" if finished and plain < expected else None,
             delta_color="inverse")
    b.metric("safestate.mutate", f"{safe} / {expected}",
             delta="none lost" if finished else None, delta_color="off")


results()
