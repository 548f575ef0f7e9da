"""safestate demo (minimal for now): per-session counter, shared counter, a background worker."""

import time

import streamlit as st

import safestate

st.set_page_config(page_title="safestate demo", page_icon="🔒")
st.title("safestate demo")
st.caption(f"Your session: `{safestate.session_id()[:8]}…`")

left, right = st.columns(2)
with left:
    st.subheader("Just you")
    if st.button("Add 1 to my counter"):
        safestate.increment("clicks")
    st.metric("My clicks", safestate.safe_get("clicks", 0))
with right:
    st.subheader("Everyone")
    if st.button("Add 1 to the shared counter"):
        safestate.shared.increment("clicks")
    st.metric("Everyone's clicks", safestate.shared.safe_get("clicks", 0))

st.subheader("Background work")


def work(handle: safestate.SessionHandle) -> None:
    for step in range(1, 11):
        time.sleep(0.3)  # stands in for real work
        handle.safe_set("progress", step * 10)


if st.button("Start a worker thread"):
    safestate.safe_set("progress", 0)
    safestate.start_thread(work)


@st.fragment(run_every=0.5)
def progress() -> None:
    st.progress(safestate.safe_get("progress", 0) / 100, text="worker progress")


progress()
