"""safestate demo: run with `make demo`, open http://127.0.0.1:8501 in two browser windows."""

import streamlit as st
from demo_common import load_css, register_dependencies, state

import safestate

st.set_page_config(page_title="safestate demo", page_icon="🔒", layout="wide")
load_css()
register_dependencies()
state()  # declare this session's keys (defaults on the first run)

pages = st.navigation(
    [
        st.Page("pages/home.py", title="Overview", icon="🏠", default=True),
        st.Page("pages/ai.py", title="AI assistant", icon="🤖"),
        st.Page("pages/worker.py", title="Background work", icon="⚙️"),
        st.Page("pages/race.py", title="Race", icon="🏁"),
        st.Page("pages/board.py", title="Shared board", icon="📋"),
        st.Page("pages/sessions.py", title="Sessions", icon="📈"),
    ]
)
with st.sidebar:
    st.markdown(
        f"<span class='ss-pill'>session {safestate.session_id()[:8]}</span>",
        unsafe_allow_html=True,
    )
    st.caption("Open this app in a second window: that is a second user.")
pages.run()
