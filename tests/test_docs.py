"""Every code block in the README and the docs runs, and every name they cite exists.

The project rule: every fenced block of README.md and docs/**/*.md is executed here, by kind:

- ```python: a Streamlit page script, run in a real script run (``AppTest``) to its last line,
  with no exception and no error on the page (the recovery panel is one), in a scratch working
  directory. Markers on the line right before a block (``<!-- docs-test: ... -->``) change how:
  ``redis`` replaces its ``redis://`` URL with a real redis-server the tests start (and the
  block must have used that store); ``secrets`` runs it with the page's last ```toml block
  before it as ``st.secrets``; ``file: NAME.py`` makes it a module the page's other blocks
  import (it runs when they import it); ``streamlit 1.58`` skips it on an older Streamlit
  (``make test-compat``), for a block that uses a newer feature. The README's quick start
  also runs on a real
  ``streamlit run`` server in Chromium.
- ```bash: each command line: ``make X`` must be a target ``make -n`` accepts, ``pip install``
  must name this distribution and its extras, ``streamlit run app.py`` (the README's quick
  start) is served by a real ``streamlit run`` with the line's environment (a metrics port is
  scraped), ``python benchmarks/X.py ARGS`` must be accepted by that script's ``parse()``;
  ``SAFESTATE_*`` and ``STREAMLIT_*`` variables must name real settings.
- ```toml: parsed; a ``[safestate]`` table's keys must be settings, and configure() must
  read each value from it as secrets; other tables must be Streamlit config options.
- ```haproxy: deploy/haproxy.cfg as `make cluster` runs it, checked by ``haproxy -c``.

Any other kind fails ``test_every_block_is_of_a_kind_that_is_run``. ``skip: reason`` is the
escape hatch for a deliberately partial block; SKIPPED lists every such block, and it is empty.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap
import threading
import types
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from conftest import HERE, PARALLEL_FRAGMENTS, RedisServer, Server, free_port, wait_for
from packaging.requirements import Requirement
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from streamlit_client import StreamlitSession

import safestate
import safestate.errors
from safestate import _compat, monitoring
from safestate.app import App
from safestate.config import _DEPLOYMENT_ONLY
from safestate.settings import NAMES, Settings

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"
DOCS = [README, *sorted(DOCS_DIR.rglob("*.md"))]
API = DOCS_DIR / "api.md"
SETTINGS = DOCS_DIR / "guides" / "settings.md"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

FENCE = re.compile(
    r"^(?:<!-- docs-test: (?P<marker>[^\n]*?) -->\n)?```(?P<lang>[\w+-]*)\n(?P<code>.*?)^```$",
    re.M | re.S,
)
SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"\bsafestate(?:\.\w+(?:\(\))?)+")
#: Names the docs cite without the package, as in `session_validator.is_ready(name)`.
SHORT = re.compile(
    r"(?<![\w.])(?:session_manager|session_validator|monitoring|shared)(?:\.\w+(?:\(\))?)+")
FROM_IMPORT = re.compile(r"\bfrom (safestate(?:\.\w+)*) import (\w+(?:, \w+)*)")
REDIS_URL = re.compile(r"redis://[^\s\"']+")
#: A session state key the test appends to each block: set only if the block ran to its end.
FINISHED = "_docs_block_ran_to_its_end"
#: The block kinds this module runs.
KINDS = ("python", "bash", "toml", "haproxy")
#: Blocks marked ``skip: reason``, by file:line. Keep it empty, or nearly.
SKIPPED: dict[str, str] = {}


@dataclass(frozen=True)
class Block:
    path: pathlib.Path
    where: str  # file:line
    lang: str
    marker: str | None
    code: str
    start: int  # offset of the block in its file

    @property
    def module(self) -> str | None:
        """The module name a ``file: NAME.py`` block is imported as."""
        if self.marker and self.marker.startswith("file: "):
            return self.marker.removeprefix("file: ").removesuffix(".py")
        return None


def blocks(path: pathlib.Path) -> list[Block]:
    text = path.read_text()
    name = path.relative_to(ROOT).as_posix()
    return [
        Block(path, f"{name}:{text.count(chr(10), 0, m.start('code'))}", m["lang"], m["marker"],
              m["code"], m.start())
        for m in FENCE.finditer(text)
    ]


ALL = [b for path in DOCS for b in blocks(path)]
RUN = [b for b in ALL if not (b.marker or "").startswith("skip:")]
PYTHON = [b for b in RUN if b.lang == "python" and b.module is None]
MODULES = [b for b in RUN if b.lang == "python" and b.module is not None]
BASH = [b for b in RUN if b.lang == "bash"]
TOML = [b for b in RUN if b.lang == "toml"]


def test_the_docs_have_blocks_of_every_kind_to_run() -> None:
    # A broken fence pattern would find nothing and every test below would pass vacuously.
    assert sum(b.path == README for b in PYTHON) >= 1
    assert len(PYTHON) >= 12 and len(BASH) >= 8 and TOML and MODULES


def test_every_block_is_of_a_kind_that_is_run() -> None:
    assert [b.where for b in ALL if b.lang not in KINDS] == [], (
        "a ``` block with no language, or one this module does not run: give it one of "
        f"{KINDS}, or mark it <!-- docs-test: skip: reason -->")
    markers = {b.where: b.marker for b in ALL if b.marker}
    known = re.compile(r"redis|secrets|file: \w+\.py|streamlit \d+\.\d+|skip: \S.*")
    assert {w: m for w, m in markers.items() if not known.fullmatch(m)} == {}


def test_skipped_blocks_are_the_listed_few() -> None:
    skipped = {b.where: (b.marker or "").removeprefix("skip:").strip() for b in ALL
               if (b.marker or "").startswith("skip:")}
    assert skipped == SKIPPED


def test_every_module_block_is_imported_by_a_block_of_its_page() -> None:
    for module in MODULES:
        users = [b for b in PYTHON if b.path == module.path
                 and re.search(rf"^(from {module.module} import|import {module.module}\b)",
                               b.code, re.M)]
        assert users, f"{module.where}: no block of its page imports {module.module}"


# -- python ---------------------------------------------------------------------------------------
def page_secrets(block: Block) -> dict[str, Any]:
    """The last ```toml block before ``block`` on its page, as st.secrets."""
    before = [b for b in blocks(block.path) if b.lang == "toml" and b.start < block.start]
    assert before, f"{block.where} is marked secrets but no ```toml block comes before it"
    return tomllib.loads(before[-1].code)


@pytest.fixture
def scratch(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A working directory of its own (a block's sqlite:///state.db lands here), on sys.path
    for a page's module blocks; metrics a block turned on are off again afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(tmp_path) in sys.modules[
                name].__file__:  # type: ignore[operator]
            del sys.modules[name]
    monitoring.disable_metrics()


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block: Block, fresh_app: App, scratch: pathlib.Path,
                           request: pytest.FixtureRequest) -> None:
    code = block.code
    server: RedisServer | None = None
    if block.marker and block.marker.startswith("streamlit "):  # "streamlit 1.58": needs it
        needed = block.marker.removeprefix("streamlit ")
        if not _compat.at_least(needed):
            pytest.skip(f"{block.where} needs Streamlit {needed}+ (the docs say so)")
    for module in MODULES:
        if module.path == block.path:
            (scratch / f"{module.module}.py").write_text(module.code)
    if block.marker == "redis":
        server = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=docs-test"
        code, replaced = REDIS_URL.subn(url, code)
        assert replaced, f"{block.where} is marked redis but names no redis:// URL"
    else:
        assert block.marker in (None, "secrets") or block.marker.startswith("streamlit "), (
            f"{block.where}: marker {block.marker!r}")
    script = f"{code}\nimport streamlit as _st\n_st.session_state[{FINISHED!r}] = True\n"
    at = AppTest.from_string(script, default_timeout=60)
    if block.marker == "secrets":
        for name, table in page_secrets(block).items():
            at.secrets[name] = table
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert FINISHED in at.session_state, f"{block.where} stopped before its last line"
    if server is not None:
        configuration = fresh_app.configuration
        assert configuration.settings is not None and configuration.settings.store == url
        assert configuration.store is not None and configuration.store.round_trips > 0


# -- the README's quick start ---------------------------------------------------------------------
def quick_start() -> str:
    """The first ```python block under the README's "## Quick start": the packaging test runs
    it verbatim from the wheel, with only streamlit and pydantic installed."""
    text = README.read_text()
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = next(m for m in FENCE.finditer(section) if m["lang"] == "python")
    assert block["marker"] is None, "the quick start runs as it is: no marker"
    return block["code"]


def test_the_quick_start_needs_nothing_but_streamlit_and_pydantic() -> None:
    imports = set(re.findall(r"^(?:from|import) (\w+)", quick_start(), re.M))
    assert imports <= {"time", "streamlit", "safestate", "pydantic", "threading", "dataclasses"}
    assert not re.search(r"redis|sqlite|open\(|configure\(", quick_start())


def test_the_quick_starts_payment_never_goes_below_zero(fresh_app: App) -> None:
    at = AppTest.from_string(quick_start(), default_timeout=60).run()
    balances = []
    for _ in range(5):
        next(b for b in at.button if b.label == "Pay 30").click().run()
        assert not at.exception, [e.message for e in at.exception]
        balances.append(at.session_state["balance"])
    assert balances == [70, 40, 10, 10, 10]
    assert at.session_state["history"] == ["paid 30"] * 3
    assert [w.value for w in at.warning] == ["Not enough left: nothing paid."]


@pytest.fixture(scope="module")
def quick_start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The README's quick start as app.py, served by `streamlit run`."""
    workdir = tmp_path_factory.mktemp("quickstart")
    app = workdir / "app.py"
    app.write_text(quick_start())
    server = Server(app, workdir / "streamlit.log")
    yield server
    server.stop()


def test_the_quick_starts_worker_progress_reaches_the_screen_without_a_click(
    quick_start_server: Server, browser: Any,
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    try:
        page.goto(quick_start_server.url)
        bar = page.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", "0", timeout=30_000)
        page.get_by_role("button", name="Start").click()
        # No other click: the fragment's run_every shows the worker's writes as they come.
        seen: set[str] = set()

        def done() -> bool:
            seen.add(bar.get_attribute("aria-valuenow") or "")
            return "100" in seen

        wait_for(done, "the worker's progress to reach 100 on the screen", timeout=30)
        assert len(seen - {"0", "100"}) >= 2, f"no progress in between: {sorted(seen)}"
    finally:
        page.close()


def test_the_quick_starts_windows_agree_on_the_shared_total(
    quick_start_server: Server, browser: Any,
) -> None:
    # Two users: a click in one shows in the other without a click there, and the totals agree
    # at rest (a page that wrote the shared key on every run would not: see the README).
    from playwright.sync_api import expect

    a, b = browser.new_page(), browser.new_page()
    try:
        for page in (a, b):
            page.goto(quick_start_server.url)
            expect(page.get_by_text("You clicked 0 times")).to_be_visible(timeout=30_000)
        text = b.get_by_text(re.compile(r"everyone, \d+ times")).inner_text()
        before = int(re.findall(r"everyone, (\d+) times", text)[0])
        for clicks in (1, 2, 3):
            a.get_by_role("button", name="Click", exact=True).click()
            expect(a.get_by_text(f"You clicked {clicks} times")).to_be_visible()
        total = f"everyone, {before + 3} times."
        expect(a.get_by_text(total)).to_be_visible()
        expect(b.get_by_text(total)).to_be_visible(timeout=15_000)  # no click in b
        expect(b.get_by_text("You clicked 0 times")).to_be_visible()
    finally:
        a.close()
        b.close()


def test_the_load_balancer_config_shown_is_the_one_make_cluster_runs(
    tmp_path: pathlib.Path,
) -> None:
    from cluster import CONFIG, server_lines

    shown = [b for b in RUN if b.lang == "haproxy"]
    assert len(shown) == 1, "the docs show deploy/haproxy.cfg once, as ```haproxy"
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


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
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


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_every_error_cited_is_in_safestate_errors(path: pathlib.Path) -> None:
    error = re.compile(r"[A-Z]\w*(?:Error|Unavailable|Conflict|InDoubt|NotReady)")
    cited = {s for s in SPAN.findall(path.read_text())
             if error.fullmatch(s) and not hasattr(builtins, s)}  # TypeError is Python's
    assert sorted(n for n in cited if not hasattr(safestate.errors, n)) == []


def test_the_api_page_lists_exactly_the_top_level_names() -> None:
    # The first table under "## Top-level names": its first column names every name of
    # safestate.__all__, and nothing else.
    section = API.read_text().split("## Top-level names", 1)[1].split("\n## ", 1)[0]
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


# -- the docs' read-and-write examples, from parallel threads and from two sessions ---------------
#: Each example: its lines as their page has them (checked verbatim), the code around them to
#: run them N times, and what a read gives after R runs in all (R = fragments x N [x sessions]).
EXAMPLES = """
import streamlit as st
import safestate


from pydantic import BaseModel


class AppState(BaseModel):  # the typed schema of docs/guides/typed-state.md
    step: int = 0
    cart: list[str] = []


def quickstart(i):
{quickstart}


def result_quickstart():
    return [safestate.safe_get("clicks"), safestate.shared.safe_get("clicks_all"),
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
DOC_LINES = {  # each example: the page it is on, and its chunks of that page, in order
    "quickstart": (README, [
        '''    safestate.increment("clicks")                  # atomic read-modify-write, this session only
    safestate.shared.increment("clicks_all")       # one counter shared by every user, no lost updates''',  # noqa: E501
        '''    with safestate.transaction() as tx:            # applied together at the end, or not at all,
        balance = tx.get("balance", 100)           # even if a click reruns the script half-way
        if balance >= 30:
            tx["balance"] = balance - 30
            tx["history"] = [*tx.get("history", []), "paid 30"]
        else:
            st.warning("Not enough left: nothing paid.")''']),  # noqa: E501
    "typed": (DOCS_DIR / "guides" / "typed-state.md", [
        '''with state.edit() as s:             # read and write under the lock: exact from every thread and tab
    s.step += 1                     # s.step = "two" -> StateValidationError: 'step' must be int ...
    s.cart.append("book")''']),  # noqa: E501
    "store": (DOCS_DIR / "guides" / "persistence-and-identity.md", [
        '''safestate.mutate("cart", lambda cart: [*cart, "book"], [])  # read and write, exact across replicas''']),  # noqa: E501
    "live": (DOCS_DIR / "guides" / "live-updates.md", [
        '''    safestate.shared.mutate("messages", lambda m: [*m, text][-20:], [])''']),
}


def expected(name: str, runs: int, sessions: int) -> list[int]:
    """What ``result_<name>`` reads in one session after ``runs`` runs in each of ``sessions``
    sessions of one identity: session keys count that session's runs, shared and persisted
    keys everybody's."""
    every = runs * sessions
    # The quick start pays 30 from 100 while the balance allows: three times.
    return {"quickstart": [runs, every, 10, 3],
            "typed": [every, every], "store": [every], "live": [every]}[name]


def per_fragment(name: str) -> int:
    """Runs per fragment: the board keeps its last 20 messages, so it gets 20 in all."""
    return 2 if name == "live" else 25


def examples_source() -> str:
    """The examples module: each function's body is its page's chunks, as they stand."""
    bodies = {}
    for name, (page, chunks) in DOC_LINES.items():
        text = page.read_text()
        for chunk in chunks:
            assert chunk in text, f"the {name} lines of {page.name} changed: update this test"
        code = "\n".join(textwrap.dedent(chunk) for chunk in chunks)
        bodies[name] = textwrap.indent(code, "    ")
    return EXAMPLES.format(**bodies)


@PARALLEL_FRAGMENTS
@pytest.mark.parametrize("name", list(DOC_LINES))
def test_read_write_lines_from_parallel_fragments_are_exact(
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
    """The docs' read-and-write lines served by `streamlit run`, on a SQLite store."""
    workdir = tmp_path_factory.mktemp("examples")
    path = workdir / "examples.py"
    path.write_text(examples_source())
    server = Server(HERE / "apps" / "examples_app.py", workdir / "streamlit.log", env={
        "EXAMPLES": str(path), "SAFESTATE_STORE": f"sqlite:///{workdir / 'state.db'}",
        "SAFESTATE_IDENTITY": "browser", "SAFESTATE_SECRET": "a-docs-secret-of-enough-length",
        "SAFESTATE_PERSIST": "step,cart"})
    yield server
    server.stop()


@pytest.mark.parametrize("name", list(DOC_LINES))
def test_read_write_lines_from_two_sessions_at_once_are_exact(
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


# -- bash -----------------------------------------------------------------------------------------
#: The settings a deployment may give (configure()'s and the deployment-only ones).
KNOWN_SETTINGS = (*NAMES, *_DEPLOYMENT_ONLY)


def commands(block: Block) -> list[list[str]]:
    """The command lines of a ```bash block, split as the shell would (comments dropped)."""
    return [words for line in block.code.splitlines() if (words := shlex.split(line, True))]


def split_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """``A=1 B=2 cmd args`` -> ({A: 1, B: 2}, [cmd, args])."""
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words[0].partition("=")
        env[name] = value
        words = words[1:]
    return env, words


def check_env(env: dict[str, str]) -> None:
    """Every SAFESTATE_* variable names a setting, every STREAMLIT_* one a config option."""
    streamlit_vars = {o.env_var for o in st_config.get_config_options().values()}
    for name in env:
        if name.startswith("SAFESTATE_"):
            assert name.removeprefix("SAFESTATE_").lower() in KNOWN_SETTINGS, name
        elif name.startswith("STREAMLIT_"):
            assert name in streamlit_vars, f"{name} is no Streamlit config option"


def check_make(args: list[str], env: dict[str, str]) -> None:
    """``make X [VAR=value]``: the Makefile has the target and ``make -n`` accepts the line."""
    dry = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env}, check=False, timeout=60)
    assert dry.returncode == 0, dry.stderr


def check_pip(args: list[str]) -> None:
    """``pip install streamlit-safestate[extra]``: this distribution, extras it declares."""
    assert args[:1] == ["install"], args
    for spec in args[1:]:
        req = Requirement(spec)
        assert req.name == PYPROJECT["project"]["name"], spec
        assert req.extras <= set(PYPROJECT["project"]["optional-dependencies"]), spec


def check_benchmark(script: str, args: list[str]) -> None:
    """``python benchmarks/X.py ARGS``: the script exists and its parse() accepts ARGS."""
    path = ROOT / script
    assert path.parent == ROOT / "benchmarks" and path.exists(), script
    module = importlib.import_module(path.stem)  # benchmarks/ is on sys.path (conftest)
    try:
        module.parse(args)
    except SystemExit:  # argparse refused them (its message is on stderr)
        pytest.fail(f"{script} refuses {args}")


def check_streamlit_run(args: list[str], env: dict[str, str], workdir: pathlib.Path) -> None:
    """``streamlit run app.py``: the README's quick start as app.py, served by a real
    `streamlit run` with the line's environment, in a directory of its own. A metrics port
    is moved to a free one and must serve safestate's metrics."""
    assert args[:2] == ["run", "app.py"] and len(args) == 2, args
    (workdir / "app.py").write_text(quick_start())
    env = dict(env)
    metrics = None
    if "SAFESTATE_METRICS_PORT" in env:
        metrics = env["SAFESTATE_METRICS_PORT"] = str(free_port())
    cwd = os.getcwd()
    os.chdir(workdir)  # the server's working directory: relative store paths land here
    try:
        server = Server(workdir / "app.py", workdir / "streamlit.log", env=env)
    finally:
        os.chdir(cwd)
    try:
        with StreamlitSession(server.port) as session:
            run = session.run()
        assert run.status == "FINISHED_SUCCESSFULLY" and not run.exceptions, run
        if metrics is not None:
            url = f"http://127.0.0.1:{metrics}/metrics"
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert "safestate_operations_total" in resp.read().decode()
        store = env.get("SAFESTATE_STORE", "")
        if store.startswith("sqlite:///"):
            assert (workdir / store.removeprefix("sqlite:///")).exists(), store
    finally:
        server.stop()


@pytest.mark.parametrize("block", BASH, ids=[b.where for b in BASH])
def test_bash_block_commands_work(block: Block, tmp_path: pathlib.Path) -> None:
    for words in commands(block):
        env, (command, *args) = split_env(words)
        check_env(env)
        if command == "make":
            check_make(args, env)
        elif command == "pip":
            check_pip(args)
        elif command in ("python", ".venv/bin/python") and args[0].startswith("benchmarks/"):
            check_benchmark(args[0], args[1:])
        elif command == "streamlit":
            check_streamlit_run(args, env, tmp_path)
        else:
            pytest.fail(f"{block.where}: no check for {command!r}: add one here, or mark the "
                        "block <!-- docs-test: skip: reason -->")


# -- toml -----------------------------------------------------------------------------------------
def as_setting(name: str, value: Any) -> Any:
    """A secrets value as configure() holds it in Settings."""
    if name == "secret":
        return value.encode()
    if isinstance(value, list):
        return tuple(value)
    if name in ("ttl", "live_interval"):
        return float(value)
    return value


@pytest.mark.parametrize("block", TOML, ids=[b.where for b in TOML])
def test_toml_block_settings_exist_and_apply(block: Block, fresh_app: App,
                                             scratch: pathlib.Path) -> None:
    parsed = tomllib.loads(block.code)
    options = set(st_config.get_config_options())
    for table, values in parsed.items():
        if table == "safestate":
            assert set(values) <= set(KNOWN_SETTINGS), sorted(set(values) - set(KNOWN_SETTINGS))
        else:  # .streamlit/config.toml
            assert {f"{table}.{k}" for k in values} <= options, values
    if "safestate" not in parsed:
        return
    at = AppTest.from_string(
        "import safestate\nsafestate.configure()\nsafestate.safe_set('x', 1)\n",
        default_timeout=60)
    at.secrets["safestate"] = parsed["safestate"]
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    settings = fresh_app.configuration.settings
    assert settings is not None
    for name, value in parsed["safestate"].items():
        if name in NAMES:
            assert getattr(settings, name) == as_setting(name, value), name


# -- the settings table ---------------------------------------------------------------------------
def test_the_settings_table_lists_every_setting_its_names_and_default() -> None:
    rows = [line for line in SETTINGS.read_text().split("\n## ", 1)[0].splitlines()
            if line.startswith("| ") and not line.startswith(("| setting ", "| ---"))]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        table[cells[0]] = cells
    assert list(table) == list(KNOWN_SETTINGS)
    defaults = Settings()
    for name, (_, argument, key, variable, default, _what) in table.items():
        assert key == f"`{name}`" and variable == f"`SAFESTATE_{name.upper()}`", name
        if name in NAMES:
            assert argument == f"`{name}=`", name
            assert default == f"`{getattr(defaults, name)!r}`", name
