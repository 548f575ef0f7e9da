import streamlit as st
from demo_common import state

import safestate

st.title("Shared board")
st.markdown("Everyone connected sees and writes this board at once, with no lost clicks.")
s = state()

left, right = st.columns(2)
with left:
    if st.button("Click the shared counter", key="board_click", type="primary"):
        safestate.shared.increment("board_total")
        with s.edit() as e:  # read and write under the lock: no lost click
            e.board_clicks += 1
    st.markdown(f"<span class='ss-note'>Your clicks on the board: "
                f"<b id='my-board-clicks'>{s.board_clicks}</b></span>", unsafe_allow_html=True)
    with st.form("post", clear_on_submit=True):
        text = st.text_input("Message", max_chars=80)
        if st.form_submit_button("Post") and text.strip():
            author = s.nickname or "anonymous"
            safestate.shared.mutate("board_messages",
                                    lambda msgs: [*msgs, f"{author}: {text.strip()}"][-10:], [])


# No polling: a fragment that reads shared keys reruns by itself when someone changes
# them (safestate's live updates), and only this fragment reruns.
@st.fragment
def board() -> None:
    st.metric("Shared counter", safestate.shared.safe_get("board_total", 0))
    messages = safestate.shared.safe_get("board_messages", [])
    if messages:
        for line in reversed(messages):
            st.markdown(f"- {line}")
    else:
        st.caption("No messages yet.")


with right:
    board()
