"""The demo's shell and board written the usual way: plain st.session_state, no safestate.

The load test (`make loadtest`) drives this and app.py with the same client, so the
pages keep the same widgets, keys and markdown. Run it alone with
`streamlit run examples/demo/app_plain.py`.
"""

import uuid

import streamlit as st
from plain.common import load_css, register_dependencies, state

st.set_page_config(page_title="plain demo", page_icon=":material/lock_open:", layout="wide")
load_css()
register_dependencies()
state()  # this session's keys (defaults on the first run)

pages = st.navigation(
    [
        st.Page("plain/home.py", title="Overview", icon=":material/home:", default=True),
        st.Page("plain/board.py", title="Shared board", icon=":material/dashboard:"),
    ]
)
with st.sidebar:
    label = st.session_state.setdefault("session_label", uuid.uuid4().hex[:8])
    st.markdown(f"<span class='ss-pill'>you are session {label}</span>",
                unsafe_allow_html=True)
    st.caption("Open this app in a second window: that is a second user.")
pages.run()
