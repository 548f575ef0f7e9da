"""A minimal Streamlit browser stand-in: one websocket session speaking Streamlit's protocol.

It uses the message types that ship inside the ``streamlit`` package (BackMsg,
ForwardMsg), so the server cannot tell it from a browser tab for what the tests
need: start a session, rerun the script with a query string, read the markdown
it drew. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import ClientConnection, connect


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    """Wait until the server on ``port`` answers /_stcore/health, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling interval of a bounded wait, not synchronization
    raise TimeoutError(f"streamlit on port {port} did not become healthy in {timeout} s")


@dataclass
class Run:
    """What one script run drew: its markdown bodies and how it ended."""

    markdown: list[str] = field(default_factory=list)
    status: str = ""
    exceptions: list[str] = field(default_factory=list)
    #: The click id ``click()`` sent, if the run answers one.
    click: str = ""

    def value(self, prefix: str) -> str:
        """The text after ``PREFIX=`` in the markdown line that starts with it."""
        for body in self.markdown:
            if body.startswith(prefix + "="):
                return body[len(prefix) + 1 :]
        raise KeyError(f"{prefix}= not drawn; drew {self.markdown} {self.exceptions}")


class StreamlitSession:
    """One browser-tab-like session against a running ``streamlit run`` server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._ws: ClientConnection | None = connect(
            f"ws://127.0.0.1:{port}/_stcore/stream",
            subprotocols=["streamlit"],  # type: ignore[list-item]
            open_timeout=30,
            max_size=None,
            max_queue=None,  # live reruns it does not read must not hold up its close
            proxy=None,  # loopback only, whatever proxy the environment names
        ).__enter__()

    def request(self, query: str = "") -> None:
        """Ask for a rerun with ``query`` as its query string, without reading it (a click)."""
        assert self._ws is not None, "session closed"
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_script_hash = ""
        self._ws.send(msg.SerializeToString())

    def _receive(self, deadline: float, what: str) -> ForwardMsg:
        """The next message from the server, or TimeoutError naming ``what`` at the deadline."""
        assert self._ws is not None, "session closed"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{what} in time")
        fwd = ForwardMsg()
        fwd.ParseFromString(self._ws.recv(timeout=remaining))
        return fwd

    def wait_for_markdown(self, body: str, timeout: float = 60.0) -> None:
        """Read what the server sends until it draws markdown ``body``, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            fwd = self._receive(deadline, f"{body!r} was not drawn")
            if (fwd.WhichOneof("type") == "delta"
                    and fwd.delta.WhichOneof("type") == "new_element"
                    and fwd.delta.new_element.WhichOneof("type") == "markdown"
                    and fwd.delta.new_element.markdown.body == body):
                return

    def run(self, query: str = "", timeout: float = 60.0) -> Run:
        """Rerun the script with ``query`` as its query string; return what it drew."""
        assert self._ws is not None, "session closed"
        self.request(query)
        return self.next_run(time.monotonic() + timeout)

    def click(self, query: str = "", timeout: float = 60.0) -> Run:
        """``run(query)`` with a click id (``c=``) the app draws as ``CLICK=``: the run that
        answers this click, past any rerun the server started on its own (live updates)."""
        click = uuid.uuid4().hex
        self.request(f"{query}&c={click}" if query else f"c={click}")
        deadline = time.monotonic() + timeout
        while True:
            run = self.next_run(deadline)
            if f"CLICK={click}" in run.markdown:
                run.click = click
                return run

    def next_run(self, deadline: float) -> Run:
        """The next script run the server draws (asked for or not), read until it ends."""
        run = Run()
        while True:
            fwd = self._receive(deadline, f"script run did not finish: {run}")
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                element = fwd.delta.new_element
                which = element.WhichOneof("type")
                if which == "markdown":
                    run.markdown.append(element.markdown.body)
                elif which == "exception":
                    run.exceptions.append(element.exception.message)
            elif kind == "new_session":
                # A run starts: what an earlier run that was cut short drew is replaced (its
                # script_finished may never come: Streamlit drops a stopped runner's events).
                run = Run()
            elif kind == "script_finished":
                run.status = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
                if run.status != "FINISHED_EARLY_FOR_RERUN":
                    return run
                run = Run()  # cut short for a newer run, whose elements replace its own

    def close(self) -> None:
        """Close the websocket, as closing the browser tab does."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def __enter__(self) -> StreamlitSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
