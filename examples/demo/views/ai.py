import streamlit as st

import safestate

st.title("AI assistant")
st.markdown(
    "This page needs the AI system, a dependency that takes a moment to start and has a health "
    "check. Break it to see what a user sees instead of a traceback."
)

with st.container(horizontal=True):
    if st.button("Break the AI", key="break_ai", icon=":material/heart_broken:"):
        safestate.shared.safe_set("ai_healthy", False)
    if st.button("Fix the AI", key="fix_ai", icon=":material/build:"):
        safestate.shared.safe_set("ai_healthy", True)

safestate.ensure_session_initialized(["caso_uso_maestro", "contenedor"])
with st.spinner("Starting the AI system…"):
    # The design's gate; builds the model on first use.
    ready = safestate.session_validator.is_ia_system_ready()
if not ready:
    safestate.require("ia_system")  # says why, offers Retry / Reset my session, and stops
model = safestate.get_dependency("ia_system", validate=False)  # just checked
recommendations = safestate.require("recommendations")["recommendations"]  # optional

st.success(f"The AI system is ready (started at {model.loaded_at}).", icon=":material/smart_toy:")
question = st.text_input("Ask a question", key="question", placeholder="What does safestate do?")
if question:
    st.markdown(f"**Answer:** {model.answer(question)}")

st.subheader("Recommendations (optional)")
if recommendations is None:
    st.caption("Optional parts degrade gracefully: the page goes on without them.")
else:
    for tip in recommendations:
        st.markdown(f"- {tip}")
