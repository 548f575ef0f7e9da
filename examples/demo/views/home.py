import streamlit as st
from demo_common import state

import safestate

st.title("safestate")
st.markdown(
    "Session state for multi-user Streamlit apps that is **safe under threads, reruns and many "
    "users**. Every page here shows one thing it does; open a second browser window to be a "
    "second user."
)
safestate.ensure_session_initialized(["caso_uso_maestro", "contenedor"])
s = state()

left, right = st.columns(2)
with left:
    st.subheader("Just you")
    # Bound, not key="nickname": Streamlit deletes a widget's key on pages that do not draw
    # the widget; bind() keeps the value under the typed key and gives the widget its own.
    st.text_input("Your nickname", placeholder="e.g. Ada",
                  **safestate.session_manager.bind("nickname"))
    if st.button("Add 1 to my counter", key="my_counter"):
        with s.edit() as e:  # read and write under the lock: no lost click
            e.my_clicks += 1
    st.metric("My clicks", s.my_clicks)
    st.markdown(safestate.session_validator.get_caso_uso_maestro().greet(s.nickname))
with right:
    st.subheader("What's here")
    st.markdown(
        "- **AI assistant**: a page guarded by a dependency that can fail: friendly error, "
        "Retry, Reset.\n"
        "- **Background work**: a worker thread writes progress into *your* session.\n"
        "- **Race**: three parallel fragments, plain `st.session_state` vs safestate.\n"
        "- **Shared board**: one counter and message list for every user at once.\n"
        "- **Sessions**: live sessions, locks, waits and memory (admin only)."
    )
