"""Served by `streamlit run` in tests/test_docs.py: the docs' read-and-write lines, run
from two sessions of one identity at once.

The lines come from $EXAMPLES (a Python file the test writes, one function per example,
each function body the docs' lines verbatim). Settings come from the environment
(SAFESTATE_STORE, SAFESTATE_IDENTITY=browser, SAFESTATE_SECRET, SAFESTATE_PERSIST).

Query parameters:
  ex=NAME   the example;  n=N   run it 4 x N times;
  c=ID      the click's id: it runs once even if the session reruns by itself.
Draws CLICK, TOKEN, and RESULT: the example's `result_<NAME>()` as JSON.
"""

import json
import os
import runpy

import streamlit as st

import safestate

safestate.configure()
# A page's first safestate call, in the page body: it works out the identity (?ss=) on the
# script's thread, before any fragment thread reads or writes the identity's keys.
safestate.safe_get("step")
examples = runpy.run_path(os.environ["EXAMPLES"])
q = dict(st.query_params)
done = st.session_state.setdefault("handled_clicks", set())
if "n" in q and q.get("c") not in done:
    done.add(q.get("c"))
    example = examples[q["ex"]]
    n = int(q.get("n", "1"))

    # In the script's own thread: the run ends when the work does (parallel fragments may
    # still run after the run's end, and a next click would stop them). The two sessions
    # run at once; tests/test_docs.py runs the same lines from parallel fragments too.
    for i in range(4 * n):
        example(i)
st.markdown(f"CLICK={q.get('c')}")
st.markdown(f"TOKEN={st.query_params.get('ss')}")
if "ex" in q:
    st.markdown(f"RESULT={json.dumps(examples['result_' + q['ex']](), default=list)}")
