import time

import streamlit as st
from demo_common import DemoState, state

import safestate

st.title("Background work")
st.markdown(
    "A worker thread has no Streamlit context: touching `st.session_state` there would use one "
    "placeholder shared by every such thread. Here it writes through a **handle** on this "
    "session, while you keep clicking."
)


def work(handle: safestate.SessionHandle) -> None:
    job = safestate.typed(DemoState, scope=handle)
    try:
        for step in range(1, 21):
            time.sleep(0.15)  # stands in for real work
            job.progress = step * 5
    finally:
        job.worker_running = False


s = state()
cols = st.columns([1, 1, 2])
if cols[0].button("Start the worker", key="start_worker", disabled=s.worker_running):
    s.progress = 0
    s.worker_running = True
    safestate.start_thread(work, name="demo-worker")
if cols[1].button("Click me meanwhile", key="meanwhile"):
    s.my_clicks += 1
cols[2].metric("My clicks", s.my_clicks)


@st.fragment(run_every=0.5)
def progress() -> None:
    value = safestate.safe_get("progress", 0)
    st.progress(value / 100, text=f"Worker progress: {value}%")


progress()
