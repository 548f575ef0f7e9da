"""Every code block in the README and the docs runs, and every name they cite exists.

The project rule: each ```python block of README.md and docs/*.md is a Streamlit page script
and runs here in a real script run (``AppTest``) to its last line, with no exception and no
error on the page (the recovery panel is one). A block that needs Redis says so with
``<!-- docs-test: redis -->`` on the line right before it: its ``redis://`` URL is replaced
by the URL of a real redis-server the tests start, and the block must have used that store.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pathlib
import re
import subprocess
import textwrap
import threading
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import HERE, RedisServer, Server
from streamlit.testing.v1 import AppTest
from streamlit_client import StreamlitSession

import safestate
import safestate.errors
from safestate.app import App

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(
    r"^(?:<!-- docs-test: (?P<needs>[\w-]+) -->\n)?```(?P<lang>[\w+-]*)\n(?P<code>.*?)^```$",
    re.M | re.S,
)
SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"\bsafestate(?:\.\w+(?:\(\))?)+")
#: Names the README cites without the package, as in `session_validator.is_ready(name)`.
SHORT = re.compile(
    r"(?<![\w.])(?:session_manager|session_validator|monitoring|shared)(?:\.\w+(?:\(\))?)+")
FROM_IMPORT = re.compile(r"\bfrom (safestate(?:\.\w+)*) import (\w+(?:, \w+)*)")
REDIS_URL = re.compile(r"redis://[^\s\"']+")
#: A session state key the test appends to each block: set only if the block ran to its end.
FINISHED = "_docs_block_ran_to_its_end"


@dataclass(frozen=True)
class Block:
    where: str  # file:line
    lang: str
    needs: str | None
    code: str


def blocks(path: pathlib.Path) -> list[Block]:
    text = path.read_text()
    return [
        Block(f"{path.name}:{text.count(chr(10), 0, m.start('code'))}", m["lang"], m["needs"],
              m["code"])
        for m in FENCE.finditer(text)
    ]


PYTHON = [b for path in DOCS for b in blocks(path) if b.lang in ("python", "py")]


def test_the_readme_has_python_blocks_to_run() -> None:
    # A broken fence pattern would find nothing and every test below would pass vacuously.
    assert sum(b.where.startswith("README.md") for b in PYTHON) >= 3


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block: Block, fresh_app: App, request: pytest.FixtureRequest) -> None:
    code = block.code
    server: RedisServer | None = None
    if block.needs == "redis":
        server = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=docs-test"
        code, replaced = REDIS_URL.subn(url, code)
        assert replaced, f"{block.where} is marked redis but names no redis:// URL"
    else:
        assert block.needs is None, f"{block.where}: unknown docs-test marker {block.needs!r}"
    script = f"{code}\nimport streamlit as _st\n_st.session_state[{FINISHED!r}] = True\n"
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert FINISHED in at.session_state, f"{block.where} stopped before its last line"
    if server is not None:
        configuration = fresh_app.configuration
        assert configuration.settings is not None and configuration.settings.store == url
        assert configuration.store is not None and configuration.store.round_trips > 0


def test_the_readmes_load_balancer_config_is_the_one_make_cluster_runs(
    tmp_path: pathlib.Path,
) -> None:
    from cluster import CONFIG, server_lines

    shown = [b for b in blocks(README) if b.lang == "haproxy"]
    assert len(shown) == 1, "the README shows deploy/haproxy.cfg once, as ```haproxy"
    assert shown[0].code == CONFIG.read_text() + server_lines([8601, 8602])
    path = tmp_path / "haproxy.cfg"
    path.write_text(shown[0].code)
    env = {**os.environ, "LB_ADDR": "127.0.0.1", "LB_PORT": "8501", "LB_STATS_PORT": "8502"}
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], env=env, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def resolve(path: str) -> Any:
    """The object a dotted ``safestate.x.y`` path names; ``()`` calls a step before the last."""
    steps = re.findall(r"\.(\w+)(\(\))?", path[len("safestate"):])
    obj: Any = safestate
    for i, (name, call) in enumerate(steps):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            if not isinstance(obj, types.ModuleType):
                raise
            obj = importlib.import_module(f"{obj.__name__}.{name}")  # a submodule
        if call and i < len(steps) - 1:
            obj = obj()
    return obj


def cited_code(path: pathlib.Path) -> list[str]:
    """Inline code spans and fenced blocks of ``path``."""
    text = path.read_text()
    fenced = [m["code"] for m in FENCE.finditer(text)]
    return fenced + SPAN.findall(FENCE.sub("", text))


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_safestate_name_cited_exists(path: pathlib.Path) -> None:
    missing = []
    for code in cited_code(path):
        for dotted in [*DOTTED.findall(code), *("safestate." + s for s in SHORT.findall(code))]:
            try:
                resolve(dotted)
            except (AttributeError, ImportError):
                missing.append(dotted)
        for module, names in FROM_IMPORT.findall(code):
            for name in names.split(", "):
                if not hasattr(importlib.import_module(module), name):
                    missing.append(f"from {module} import {name}")
    assert missing == []


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_error_cited_is_in_safestate_errors(path: pathlib.Path) -> None:
    error = re.compile(r"[A-Z]\w*(?:Error|Unavailable|Conflict|InDoubt|NotReady)")
    cited = {s for s in SPAN.findall(path.read_text())
             if error.fullmatch(s) and not hasattr(builtins, s)}  # TypeError is Python's
    assert sorted(n for n in cited if not hasattr(safestate.errors, n)) == []


def test_the_readme_lists_exactly_the_top_level_names() -> None:
    # The first table under "## What it gives you": its first column names every name of
    # safestate.__all__, and nothing else.
    section = README.read_text().split("## What it gives you", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    names = {re.match(r"\w+", span)[0]  # type: ignore[index]
             for row in table for span in SPAN.findall(row.split("|")[1])}
    assert sorted(names) == sorted(safestate.__all__)


# -- the README's read-and-write examples, from parallel threads and from two sessions -------------
#: Each example: its lines as the README has them (checked verbatim), the code around them to
#: run them N times, and what a read gives after R runs in all (R = fragments x N [x sessions]).
EXAMPLES = """
import streamlit as st
import safestate


from pydantic import BaseModel


class AppState(BaseModel):  # the README's typed schema
    step: int = 0
    cart: list[str] = []


def quickstart(i):
{quickstart}


def result_quickstart():
    return [safestate.safe_get("visits"), safestate.shared.safe_get("visits_all"),
            safestate.safe_get("balance"), len(safestate.safe_get("history"))]


def typed(i):
    state = safestate.typed(AppState)
{typed}


def result_typed():
    return [safestate.safe_get("step"), len(safestate.safe_get("cart"))]


def store(i):
{store}


def result_store():
    return [len(safestate.safe_get("cart"))]


def live(i):
    text = f"{{i}}-{{safestate.session_manager.session_id()[:8]}}-{{id(object())}}"
{live}


def result_live():
    return [len(safestate.shared.safe_get("messages", []))]
"""
README_LINES = {  # each example: its chunks of the README, in order
    "quickstart": [
        '''safestate.increment("visits")                      # atomic read-modify-write, this session only
safestate.shared.increment("visits_all")           # one counter shared by every user, no lost updates''',  # noqa: E501
        '''with safestate.transaction() as tx:                # applied together at the end, or not at all,
    tx["balance"] = tx.get("balance", 100) - 30    # even if a click reruns the script half-way
    tx["history"] = [*tx.get("history", []), "paid 30"]'''],  # noqa: E501
    "typed": [
        '''with state.edit() as s:             # read and write under the lock: exact from every thread and tab
    s.step += 1                     # s.step = "two" -> StateValidationError: 'step' must be int ...
    s.cart.append("book")'''],  # noqa: E501
    "store": [
        '''safestate.mutate("cart", lambda cart: [*cart, "book"], [])  # read and write, exact across replicas'''],  # noqa: E501
    "live": [
        '''    safestate.shared.mutate("messages", lambda m: [*m, text][-20:], [])'''],
}


def expected(name: str, runs: int, sessions: int) -> list[int]:
    """What ``result_<name>`` reads in one session after ``runs`` runs in each of ``sessions``
    sessions of one identity: session keys count that session's runs, shared and persisted
    keys everybody's."""
    every = runs * sessions
    return {"quickstart": [runs, every, 100 - 30 * runs, runs],
            "typed": [every, every], "store": [every], "live": [every]}[name]


def per_fragment(name: str) -> int:
    """Runs per fragment: the board keeps its last 20 messages, so it gets 20 in all."""
    return 2 if name == "live" else 25


def examples_source() -> str:
    """The examples module: each function's body is the README's chunks, as they stand."""
    readme = README.read_text()
    bodies = {}
    for name, chunks in README_LINES.items():
        for chunk in chunks:
            assert chunk in readme, f"the README's {name} lines changed: update this test"
        code = "\n".join(textwrap.dedent(chunk) for chunk in chunks)
        bodies[name] = textwrap.indent(code, "    ")
    return EXAMPLES.format(**bodies)


@pytest.mark.parametrize("name", list(README_LINES))
def test_readme_read_write_lines_from_parallel_fragments_are_exact(
    name: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest,
) -> None:
    path = tmp_path / "examples.py"
    path.write_text(examples_source())
    url = f"sqlite:///{tmp_path / 'state.db'}"
    script = f"""
import runpy
import streamlit as st
import safestate
safestate.configure(store={url!r}, identity=lambda: "docs", persist=["step", "cart"])
ex = runpy.run_path({str(path)!r})
def body():
    for i in range({per_fragment(name)}):
        ex[{name!r}](i)
if "ran" not in st.session_state:
    st.session_state["ran"] = True
    for _ in range(4):
        st.fragment(parallel=True)(body)()
else:  # the next run, once the fragments are done
    st.session_state["result"] = ex["result_" + {name!r}]()
"""
    at = AppTest.from_string(script, default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["result"] == expected(name, 4 * per_fragment(name), 1)


@pytest.fixture(scope="module")
def examples_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The README's read-and-write lines served by `streamlit run`, on a SQLite store."""
    workdir = tmp_path_factory.mktemp("examples")
    path = workdir / "examples.py"
    path.write_text(examples_source())
    server = Server(HERE / "apps" / "examples_app.py", workdir / "streamlit.log", env={
        "EXAMPLES": str(path), "SAFESTATE_STORE": f"sqlite:///{workdir / 'state.db'}",
        "SAFESTATE_IDENTITY": "browser", "SAFESTATE_SECRET": "a-docs-secret-of-enough-length",
        "SAFESTATE_PERSIST": "step,cart"})
    yield server
    server.stop()


@pytest.mark.parametrize("name", list(README_LINES))
def test_readme_read_write_lines_from_two_sessions_at_once_are_exact(
    name: str, examples_server: Server,
) -> None:
    port = examples_server.port
    with StreamlitSession(port) as first:
        token = first.click(f"x={name}").value("TOKEN")  # a new identity for this example
    n = per_fragment(name)
    with StreamlitSession(port) as a, StreamlitSession(port) as b:
        barrier = threading.Barrier(2)

        def go(tab: StreamlitSession) -> None:
            barrier.wait(30)
            tab.click(f"ss={token}&ex={name}&n={n}", timeout=120)

        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(go, a), pool.submit(go, b)]:
                done.result(timeout=150)
        for tab in (a, b):
            run = tab.click(f"ss={token}&ex={name}")
            assert not run.exceptions, run.exceptions
            assert json.loads(run.value("RESULT")) == expected(name, 4 * n, 2)
