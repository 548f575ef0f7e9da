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
import pathlib
import re
import types
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import RedisServer
from streamlit.testing.v1 import AppTest

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
