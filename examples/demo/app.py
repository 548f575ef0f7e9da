"""safestate demo: run with `make demo`, open http://127.0.0.1:8501 in two browser windows."""

import streamlit as st
from demo_common import load_css, register_dependencies, state

import safestate

st.set_page_config(page_title="safestate demo", page_icon=":material/lock:", layout="wide")
load_css()
register_dependencies()
state()  # declare this session's keys (defaults on the first run)

pages = st.navigation(
    [
        st.Page("views/home.py", title="Overview", icon=":material/home:", default=True),
        st.Page("views/ai.py", title="AI assistant", icon=":material/smart_toy:"),
        st.Page("views/worker.py", title="Background work", icon=":material/settings:"),
        st.Page("views/race.py", title="Race", icon=":material/sports_score:"),
        st.Page("views/board.py", title="Shared board", icon=":material/dashboard:"),
        st.Page("views/sessions.py", title="Sessions", icon=":material/monitoring:"),
    ]
)
with st.sidebar:
    st.markdown(
        f"<span class='ss-pill'>you are session {safestate.session_manager.session_label()}</span>",
        unsafe_allow_html=True,
    )
    st.caption("Open this app in a second window: that is a second user.")
pages.run()
