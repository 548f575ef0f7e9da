import streamlit as st

import safestate

st.title("AI assistant")
st.markdown(
    "This page needs the AI system, a dependency that takes a moment to start and has a health "
    "check. Break it to see what a user sees instead of a traceback. The switch is shared, as a "
    "real outage is: breaking it breaks the AI page of **every user** of this demo until "
    "someone fixes it (open a second window to watch)."
)

EVERYONE = "Every user of this demo sees it: the switch is shared by all sessions."
# Columns, not st.container(horizontal=True): that needs Streamlit 1.48.
break_col, fix_col, _ = st.columns([2, 2, 3])
if break_col.button("Break the AI for everyone", key="break_ai", icon=":material/heart_broken:",
                    help=f"Makes the AI system's health check fail. {EVERYONE}"):
    safestate.shared.safe_set("ai_healthy", False)
if fix_col.button("Fix the AI for everyone", key="fix_ai", icon=":material/build:",
                  help=f"Makes the AI system healthy again. {EVERYONE}"):
    safestate.shared.safe_set("ai_healthy", True)

if not safestate.shared.safe_get("ai_healthy", True):
    st.info("The AI is broken for **every user** of this demo, not only for you: each of "
            "their AI pages shows the panel below until someone clicks **Fix the AI for "
            "everyone**.", icon=":material/groups:")

safestate.ensure_session_initialized(["caso_uso_maestro", "contenedor"])
with st.spinner("Starting the AI system…"):
    # The design's gate; builds the model on first use.
    ready = safestate.session_validator.is_ia_system_ready()
if not ready:
    safestate.require("ia_system")  # says why, offers Retry / Reset my session, and stops
model = safestate.get_dependency("ia_system", validate=False)  # just checked

st.success(f"The AI system is ready (started at {model.loaded_at}).", icon=":material/smart_toy:")
question = st.text_input("Ask a question", key="question", placeholder="What does safestate do?")
if question:
    st.markdown(f"**Answer:** {model.answer(question)}")

st.subheader("Recommendations (optional)")
# Optional: if it fails, require() warns here, in its own part of the page, and maps it to None.
recommendations = safestate.require("recommendations")["recommendations"]
if recommendations is None:
    st.caption("Optional parts degrade gracefully: the page goes on without them.")
else:
    for tip in recommendations:
        st.markdown(f"- {tip}")
