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


def work(handle: safestate.manager.SessionHandle) -> None:
    job = safestate.typed(DemoState, scope=handle)
    try:
        for step in range(1, 21):
            time.sleep(0.15)  # stands in for real work
            job.progress = step * 5
    finally:
        job.worker_running = False


s = state()
# Columns, not st.container(horizontal=True) nor st.metric(width=): those need 1.48 / 1.46.
start_col, click_col, _ = st.columns([1, 1, 2])
with start_col:
    if st.button("Start the worker", key="start_worker", type="primary",
                 icon=":material/play_arrow:"):
        # Check and claim in one step: two quick clicks must not start two workers.
        with safestate.transaction() as tx:
            claimed = not tx["worker_running"]
            if claimed:
                tx.update({"worker_running": True, "progress": 0})
        if claimed:
            safestate.start_thread(work, name="demo-worker")
        else:
            st.toast("The worker is already running.")
with click_col:
    if st.button("Click me meanwhile", key="meanwhile", icon=":material/touch_app:"):
        with s.edit() as e:  # read and write under the lock: no lost click
            e.my_clicks += 1
st.columns(4)[0].metric("My clicks", s.my_clicks)  # a quarter of the width


@st.fragment(run_every=0.5)
def progress() -> None:
    value = safestate.safe_get("progress", 0)
    st.progress(value / 100, text=f"Worker progress: {value}%")


progress()
