import math

import streamlit as st
from demo_common import admin_attempt, admin_password

import safestate

st.title("Sessions")
expected = admin_password()
if expected is None:
    st.info("Set `DEMO_ADMIN_PASSWORD` (or `safestate_admin_password` in secrets) to "
            "enable this page. `make demo` sets it to `demo-admin`.")
    st.stop()
st.caption("Every session's bookkeeping: counts, locks, memory. Admins only.")
# No key: a keyed widget's value is a session key, and the health report below lists every
# session key with its length. A password's length is nobody's business.
given = st.text_input("Admin password", type="password")
if not given:
    st.stop()
verdict, wait = admin_attempt(given, expected)
seconds = math.ceil(wait)  # never "wait 0 s" while a wait is left
if verdict == "wait":
    st.error(f"Too many wrong tries: wait {seconds} s before trying again.")
    st.stop()
if verdict == "wrong":
    st.error("Wrong password." + (f" Wait {seconds} s before the next try." if wait else ""))
    st.stop()


@st.fragment(run_every=2.0)
def monitor() -> None:
    stats = safestate.session_manager.get_session_stats()
    a, b, c, d = st.columns(4)
    a.metric("Live sessions", stats["sessions_active"])
    b.metric("Tracked", stats["sessions_tracked"])
    c.metric("Cleaned up", stats["sessions_cleaned"])
    d.metric("Locks held", stats["locks_held"])
    e, f, g, h = st.columns(4)
    e.metric("Operations", stats["operations"])
    f.metric("Lock waits", stats["lock_waits"])
    g.metric("Total wait", f"{stats['lock_wait_seconds'] * 1000:.1f} ms")
    h.metric("Memory / session", f"{stats['memory_per_session_bytes']} B")
    st.caption(f"Disconnected, still resumable: {stats['sessions_disconnected']}. "
               "Key names, types and counts only: never another user's values.")
    st.dataframe(safestate.session_manager.session_table(), hide_index=True,
                 key="session_table")
    st.subheader("App health")
    safestate.session_validator.health_report("app").render()


monitor()
st.subheader("Your session")
safestate.session_validator.health_report().render()
