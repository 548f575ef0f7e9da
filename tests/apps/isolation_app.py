"""Served by `streamlit run` in tests/test_server.py: each session writes its own name."""

import json

import streamlit as st

import safestate

q = st.query_params
if "name" in q:
    safestate.safe_set("owner", q["name"])
    safestate.safe_set(f"only_{q['name']}", True)
    safestate.increment("visits")
    safestate.shared.increment("visits_all")

st.markdown(f"SID={safestate.session_manager.session_id()}")
st.markdown(f"OWNER={safestate.safe_get('owner')}")
st.markdown(f"VISITS={safestate.safe_get('visits', 0)}")
st.markdown(f"KEYS={','.join(safestate.session_manager.keys())}")
if "check" in q:
    stats = safestate.session_manager.get_session_stats()
    ids = [i for i in q["check"].split(",") if i]
    tracked = [i for i in ids if safestate.session_manager.is_tracked(i)]
    st.markdown(f"TRACKED={','.join(tracked)}")
    statuses = ",".join(f"{i}:{safestate._compat.session_status(i)}" for i in ids)
    st.markdown(f"STATUS={statuses}")
    st.markdown(f"STATS={json.dumps(stats)}")
