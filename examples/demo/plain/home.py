import streamlit as st
from plain.common import state

st.title("plain st.session_state")
st.markdown(
    "The same pages as the safestate demo, written with plain `st.session_state` and a shared "
    "dict from `st.cache_resource`: the baseline the load test compares safestate with."
)
s = state()

left, right = st.columns(2)
with left:
    st.subheader("Just you")
    st.text_input("Your nickname", key="nickname", placeholder="e.g. Ada")
    if st.button("Add 1 to my counter", key="my_counter"):
        s.my_clicks += 1
    st.metric("My clicks", s.my_clicks)
    st.markdown(s.caso_uso_maestro.greet(s.nickname))
with right:
    st.subheader("What's here")
    st.markdown("- **Shared board**: one counter and message list for every user at once.")
