"""An asyncio stand-in for a browser tab, speaking Streamlit's own websocket protocol.

BackMsg/ForwardMsg ship inside the ``streamlit`` package, so the server cannot tell
these sessions from real tabs for what the load test does: open the board page,
click its button, read what the run drew. Hundreds share one event loop. Every
wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

#: What a bounded wait raises (asyncio's own class until Python 3.11 made them one).
TIMEOUTS = (TimeoutError, asyncio.TimeoutError)
MY_CLICKS = re.compile(r"id='my-board-clicks'>(\d+)<")
SHARED_COUNTER = "Shared counter"


class ProtocolError(Exception):
    """The server answered, but not as the board page should (an error for the load test)."""


@dataclass
class Drawn:
    """What one script run drew that the load test reads."""

    status: str = ""
    markdown: list[str] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)
    #: Widget element ids by their user key (the id ends with "-<key>").
    widgets: dict[str, str] = field(default_factory=dict)
    exceptions: list[str] = field(default_factory=list)
    page_not_found: bool = False

    def my_clicks(self) -> int | None:
        """This session's board clicks as the page drew them, or None if it did not."""
        for body in self.markdown:
            found = MY_CLICKS.search(body)
            if found:
                return int(found.group(1))
        return None

    def shared_counter(self) -> int | None:
        """The shared counter's metric, or None if the page did not draw it."""
        value = self.metrics.get(SHARED_COUNTER)
        return None if value is None else int(value.replace(",", ""))


class Tab:
    """One session: a websocket to /_stcore/stream and the page it is on."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ws: ClientConnection | None = None
        #: The page the server ran last (from its navigation message): reruns stay on it.
        self.page_hash = ""

    async def open(self, timeout: float) -> None:
        """Connect; a tab's session starts with its first rerun request, not here."""
        self.ws = await asyncio.wait_for(
            connect(
                f"ws://127.0.0.1:{self.port}/_stcore/stream",
                subprotocols=[Subprotocol("streamlit")],
                proxy=None,  # loopback only, whatever proxy the environment names
                max_size=None,
                # Unread messages (live reruns of a tab that is done clicking) must not stop
                # the reading: the close handshake waits behind them. A browser reads all.
                max_queue=None,
                open_timeout=timeout,
                # A loaded server answers pings late; a browser would not hang up on it.
                ping_interval=None,
            ),
            timeout,
        )

    async def run(
        self,
        *,
        page_name: str = "",
        widgets: Iterable[WidgetState] = (),
        timeout: float,
    ) -> Drawn:
        """Ask for a rerun (of ``page_name`` the first time) and read it to script_finished."""
        if self.ws is None:
            raise ProtocolError("tab is closed")
        msg = BackMsg()
        rerun = msg.rerun_script
        rerun.query_string = ""
        # st.navigation resolves the page hash first and the url pathname only without one.
        rerun.page_script_hash = self.page_hash
        rerun.page_name = "" if self.page_hash else page_name
        rerun.widget_states.widgets.extend(widgets)
        await self.ws.send(msg.SerializeToString())
        drawn = Drawn()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"script run did not finish in {timeout} s")
            data = await asyncio.wait_for(self.ws.recv(), remaining)
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                if fwd.delta.WhichOneof("type") == "new_element":
                    _read_element(fwd.delta.new_element, drawn)
            elif kind == "navigation":
                self.page_hash = fwd.navigation.page_script_hash
            elif kind == "page_not_found":
                drawn.page_not_found = True
            elif kind == "script_finished":
                drawn.status = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
                if drawn.status == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY":
                    # The server reran a fragment by itself (a live update: the board changed);
                    # this client asked for the whole page, which follows.
                    drawn = Drawn()
                    continue
                # A run cut short for a newer one is followed by that one's messages.
                if drawn.status != "FINISHED_EARLY_FOR_RERUN":
                    return drawn

    async def close(self) -> None:
        """Close the websocket, as closing the browser tab does."""
        if self.ws is not None:
            ws, self.ws = self.ws, None
            await ws.close()


def _read_element(element: object, drawn: Drawn) -> None:
    which = element.WhichOneof("type")  # type: ignore[attr-defined]
    if which == "markdown":
        drawn.markdown.append(element.markdown.body)  # type: ignore[attr-defined]
    elif which == "metric":
        drawn.metrics[element.metric.label] = element.metric.body  # type: ignore[attr-defined]
    elif which == "exception":
        drawn.exceptions.append(element.exception.message)  # type: ignore[attr-defined]
    elif which in ("button", "text_input"):
        widget_id = getattr(element, which).id
        drawn.widgets[widget_id.rsplit("-", 1)[-1]] = widget_id


def trigger(widget_id: str) -> WidgetState:
    """The widget state a click on a button sends (a trigger: true for one run only)."""
    return WidgetState(id=widget_id, trigger_value=True)

