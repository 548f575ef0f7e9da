import streamlit as st
from plain.common import board_store, state

st.title("Shared board")
st.markdown("Everyone connected sees and writes this board at once, with no lock at all.")
s = state()
store = board_store()

left, right = st.columns(2)
with left:
    if st.button("Click the shared counter", key="board_click", type="primary"):
        store["board_total"] += 1  # read-modify-write on a shared dict, unguarded
        s.board_clicks += 1
    st.markdown(f"<span class='ss-note'>Your clicks on the board: "
                f"<b id='my-board-clicks'>{s.board_clicks}</b></span>", unsafe_allow_html=True)
    with st.form("post", clear_on_submit=True):
        text = st.text_input("Message", max_chars=80)
        if st.form_submit_button("Post") and text.strip():
            author = s.nickname or "anonymous"
            store["board_messages"] = [*store["board_messages"], f"{author}: {text.strip()}"][-10:]


@st.fragment(run_every=1.0)
def board() -> None:
    st.metric("Shared counter", store["board_total"])
    messages = store["board_messages"]
    if messages:
        for line in reversed(messages):
            st.markdown(f"- {line}")
    else:
        st.caption("No messages yet.")


with right:
    board()
