"""The board bench_live.py measures: the demo's Shared board, alone.

Started by the bench as ``streamlit run``; ``BOARD_MODE`` picks how viewers see new posts:

* ``poll``: the board fragment reruns every second (``@st.fragment(run_every=1.0)``), as
  the demo's board did before live updates; ``safestate.configure(live=False)``.
* ``live``: a plain ``@st.fragment``; safestate reruns it when ``board_messages`` changes.

``?poll=0`` (the bench's writer page) draws the board without ``run_every`` in poll mode
too: the writer sees its posts in its own runs, and the idle rate is the viewers' alone.

The store is the deployment's (``$SAFESTATE_STORE``; memory when unset). Every run prints
one line to the server log, ``BOARD <full|fragment> who=<?who=...>``, so the bench can
count which kind of rerun each page got (one short write per run, the same in both modes).
"""

from __future__ import annotations

import os
import sys

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

import safestate

MODE = os.environ.get("BOARD_MODE", "live")
if MODE not in ("poll", "live"):
    raise SystemExit(f"BOARD_MODE must be poll or live, not {MODE!r}")

safestate.configure(live=MODE == "live")
WHO = st.query_params.get("who", "?")
POLL = MODE == "poll" and st.query_params.get("poll", "1") != "0"


def trace(kind: str) -> None:
    """One log line per run; one write() call, so lines of concurrent runs do not mix."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"BOARD {kind} who={WHO}\n".encode())


trace("full")

st.title("Shared board")
with st.form("post", clear_on_submit=True):
    text = st.text_input("Message", max_chars=80)
    if st.form_submit_button("Post") and text.strip():
        line = text.strip()
        safestate.shared.mutate("board_messages", lambda msgs: [*msgs, line][-10:], [])


def board() -> None:
    """The messages, newest first, as the demo's board draws them."""
    # A fragment-only rerun runs no body: this line tells the bench it happened.
    if _fragment_rerun():
        trace("fragment")
    messages = safestate.shared.safe_get("board_messages", [])
    if messages:
        for message in reversed(messages):
            st.markdown(f"- {message}")
    else:
        st.caption("No messages yet.")


def _fragment_rerun() -> bool:
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


board = st.fragment(run_every=1.0)(board) if POLL else st.fragment(board)
board()
