"""The app bench_flood.py floods with click reruns (defect D5: rapid reruns pile up threads).

Started by the bench as ``streamlit run``; the variant comes from the environment:

* ``FLOOD_VARIANT``: ``plain`` (st.session_state, no safestate), ``memory``
  (safestate, memory://, identity "session"), ``sqlite`` or ``redis`` (safestate with
  the store at ``FLOOD_STORE_URL``, one fixed identity, so the store holds one log).
* ``FLOOD_APPLIED_FILE``: where each run that applied its click appends the click's
  number, one line, right after the read-modify-write returned. The bench reads it
  afterwards without going through the state under test.

A run with the "Click" button pressed appends the number input's value n to the
session's ``log`` with a read-modify-write, then draws a few more elements (each
st.* call is a point where Streamlit stops a superseded run) and
``FLOOD n=<n> len=<len>``. A run without a click draws the whole log as
``FLOOD_LOG <json list>``: that is how the bench reads the final state.
"""

from __future__ import annotations

import json
import os

import streamlit as st

VARIANT = os.environ.get("FLOOD_VARIANT", "plain")
APPLIED_FILE = os.environ.get("FLOOD_APPLIED_FILE", "")
STORE_URL = os.environ.get("FLOOD_STORE_URL", "")
#: The identity of every session for the store variants (the bench reads its namespace).
IDENTITY = "flood"


def flood_identity() -> str:
    """Every session is the same identity (works it out when called: captures nothing)."""
    return "flood"


if VARIANT not in ("plain", "memory", "sqlite", "redis"):
    raise SystemExit(f"FLOOD_VARIANT must be plain, memory, sqlite or redis, not {VARIANT!r}")

if VARIANT != "plain":
    import safestate

    if VARIANT == "memory":
        safestate.configure(store="memory://", identity="session", persist=["log"])
    else:
        safestate.configure(store=STORE_URL, identity=flood_identity, persist=["log"])

n = int(st.number_input("n", key="n", value=0, step=1))
clicked = st.button("Click", key="click")

if clicked:
    log: list[int]
    if VARIANT == "plain":
        # The read-modify-write an app without safestate writes.
        st.session_state["log"] = log = [*st.session_state.get("log", []), n]
    else:
        log = safestate.mutate("log", lambda old: [*old, n], [])
    if APPLIED_FILE:
        # One write() of one short line in append mode: lines from concurrent runs do not mix.
        with open(APPLIED_FILE, "a") as applied:
            applied.write(f"{n}\n")
    # A little more work, each call a yield point where a superseded run ends.
    for step in range(3):
        st.write(f"step {step} after click {n}")
    st.markdown(f"FLOOD n={n} len={len(log)}")
else:
    if VARIANT == "plain":
        current = st.session_state.get("log", [])
    else:
        current = safestate.safe_get("log", [])
    st.markdown("FLOOD_LOG " + json.dumps(list(current)))
