"""The package people install: its metadata, its version, and the wheel in a clean venv.

The first tests are quick and run in ``make test``. The wheel tests need the wheel and the sdist
that ``make dist`` builds, and PyPI: ``make test-wheel`` runs them (``SAFESTATE_WHEEL_DIR=dist``).
They install the wheel with real pip into fresh venvs (``python -m venv``, no editable install,
run from a temporary directory with a clean environment), one next to the oldest Streamlit the
package supports (the floor of ``streamlit>=X.Y`` in pyproject.toml, as ``X.Y.*``), one next to
1.52 (between) and one next to the newest, and run the README's quick start there in ``AppTest``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from email.parser import Parser
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import safestate

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = pathlib.Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
VERSION: str = PROJECT["version"]
DIST = "streamlit-safestate"

#: A fenced block, any language (so a ```python inside another block is not taken for one).
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
QUICK_START = re.compile(r"^##[ \t]+Quick[ -]?start\b.*$", re.I | re.M)
SECTION = re.compile(r"^##[ \t]", re.M)


def quick_start(readme: str) -> str:
    """The first ```python block under the heading ``## Quick start``; while the README has no
    such heading, its first ```python block."""
    heading = QUICK_START.search(readme)
    start = heading.end() if heading else 0
    block = next((m for m in FENCE.finditer(readme, start) if m["lang"] in ("python", "py")),
                 None)
    assert block is not None, "the README has no ```python block for its quick start"
    if heading is not None:
        next_section = SECTION.search(readme, start)
        assert next_section is None or block.start() < next_section.start(), (
            "## Quick start has no ```python block before the next section")
    return block["code"]


def test_version_is_the_one_in_pyproject() -> None:
    assert safestate.__version__ == VERSION
    assert "__version__" not in safestate.__all__


def test_streamlit_has_a_floor_and_no_upper_bound() -> None:
    streamlit = oldest_streamlit()
    assert re.fullmatch(r"\d+\.\d+\.\*", streamlit), streamlit


def test_the_classifiers_are_trove_classifiers() -> None:
    # In the dev extra; the venvs of `make test-compat` (the test extra) skip this.
    classifiers = pytest.importorskip("trove_classifiers").classifiers

    assert set(PROJECT["classifiers"]) <= classifiers, set(PROJECT["classifiers"]) - classifiers
    assert "Typing :: Typed" in PROJECT["classifiers"]
    for minor in range(10, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in PROJECT["classifiers"]


def test_the_quick_start_prefers_its_heading() -> None:
    before = "```python\nfirst = 1\n```\n"
    readme = f"# x\n\n{before}\n## Quick start\n\n```bash\npip install x\n```\n" \
             "```python\nquick = 1\n```\n\n## Next\n\n```python\nnext = 1\n```\n"
    assert quick_start(readme) == "quick = 1\n"
    assert quick_start(readme.replace("Quick start", "Quickstart (2 minutes)")) == "quick = 1\n"
    assert quick_start(f"# x\n\n{before}\n## Other\n") == "first = 1\n"
    with pytest.raises(AssertionError, match="no ```python block before the next section"):
        quick_start(f"# x\n\n{before}## Quick start\n\nText.\n\n## Next\n\n```python\nn = 1\n```\n")


def test_the_readme_has_a_quick_start() -> None:
    assert "safestate" in quick_start((ROOT / "README.md").read_text())


def oldest_streamlit() -> str:
    """``X.Y.*`` for the dependency ``streamlit>=X.Y``, which must have no upper bound."""
    (streamlit,) = [r for r in map(Requirement, PROJECT["dependencies"]) if r.name == "streamlit"]
    (spec,) = streamlit.specifier
    assert spec.operator == ">=", f"streamlit is pinned as {streamlit}: a floor only"
    return ".".join(spec.version.split(".")[:2]) + ".*"


# The wheel and the sdist (make test-wheel).

WHEEL_DIR = os.environ.get("SAFESTATE_WHEEL_DIR")
needs_dist = pytest.mark.skipif(
    not WHEEL_DIR, reason="make test-wheel runs it: the wheel from make dist in clean venvs")


def built(suffix: str) -> pathlib.Path:
    assert WHEEL_DIR is not None
    found = sorted(pathlib.Path(WHEEL_DIR).resolve().glob(f"*{suffix}"))
    assert len(found) == 1, f"one *{suffix} in {WHEEL_DIR}, found {[p.name for p in found]}"
    assert f"-{VERSION}" in found[0].name, f"{found[0].name} is not version {VERSION}"
    return found[0]


@needs_dist
def test_the_wheel_has_the_package_typed_and_nothing_else() -> None:
    with zipfile.ZipFile(built(".whl")) as wheel:
        names = set(wheel.namelist())
        info = f"streamlit_safestate-{VERSION}.dist-info/"
        meta = Parser().parsestr(wheel.read(f"{info}METADATA").decode())
    sources = {p.relative_to(ROOT / "src").as_posix()
               for p in (ROOT / "src" / "safestate").rglob("*.py")}
    assert sources | {"safestate/py.typed"} == {n for n in names if not n.startswith(info)}
    assert f"{info}licenses/LICENSE" in names
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Description-Content-Type"] == "text/markdown"
    requires = meta.get_all("Requires-Dist") or []
    assert set(PROJECT["dependencies"]) <= set(requires)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues", "Source"}
    # PyPI shows the README with no repository around it: each link is absolute, and names a
    # file that is in the repository.
    description = meta.get_payload()
    assert isinstance(description, str) and "pip install streamlit-safestate" in description
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links and not [u for u in links if not u.startswith(("https://", "#"))]
    forge = (urls["Source"] + "/blob/main/",
             urls["Source"].replace("github.com", "raw.githubusercontent.com") + "/main/")
    for url in links:
        if url.startswith(forge):
            path = url.removeprefix(forge[0]).removeprefix(forge[1])
            assert (ROOT / path.split("#")[0]).is_file(), f"{url}: no {path} in the repository"


@needs_dist
def test_the_sdist_has_the_readme_license_and_changelog_and_no_tests() -> None:
    with tarfile.open(built(".tar.gz")) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml",
            "src/safestate/__init__.py", "src/safestate/py.typed"} <= names
    assert not [n for n in names if n.startswith(("tests", "benchmarks", "examples", "deploy"))]


#: Runs in the clean venv with ``python -I`` (no cwd, no PYTHON* variables, no user site).
RUNNER = textwrap.dedent("""
    import json, sys
    import safestate, streamlit
    from streamlit.testing.v1 import AppTest

    end = "import streamlit as _st\\n_st.session_state['_ran'] = 1\\n"
    script = open(sys.argv[1]).read() + "\\n" + end
    at = AppTest.from_string(script, default_timeout=60).run()
    print(json.dumps({
        "prefix": sys.prefix,
        "safestate": safestate.__file__,
        "streamlit": streamlit.__version__,
        "exceptions": [e.message for e in at.exception],
        "errors": [e.value for e in at.error],
        "finished": "_ran" in at.session_state,
    }))
""")


def run(cmd: list[str], cwd: pathlib.Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}",
                    pytrace=False)
    return done.stdout


@needs_dist
@pytest.mark.timeout(900)
@pytest.mark.parametrize("streamlit", ["oldest", "1.52", "newest"])
def test_the_wheel_runs_the_quick_start_in_a_clean_venv(
    streamlit: str, tmp_path: pathlib.Path
) -> None:
    wheel = built(".whl")
    requirement = {"oldest": f"streamlit=={oldest_streamlit()}", "newest": "streamlit"}.get(
        streamlit, f"streamlit=={streamlit}.*")
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    (work / "quick_start.py").write_text(quick_start((ROOT / "README.md").read_text()))
    (work / "runner.py").write_text(RUNNER)
    # Nothing of this process's environment reaches the venv's Python but a PATH, a HOME (pip's
    # cache) and pip's registry settings: no PYTHONPATH, no VIRTUAL_ENV, not the repository.
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
           "LANG": "C.UTF-8"}
    env |= {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k == "TMPDIR"}
    python = str(venv / "bin" / "python")

    started = time.monotonic()
    # A venv without pip of its own, filled by this environment's pip (`--python`): ensurepip
    # costs 7-14 s a venv here, and pip's HTTP cache keeps no wheels behind this machine's
    # registry proxy (its responses carry no caching headers), so that is where time goes.
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work, env, 120)
    made = time.monotonic()
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile",
         str(wheel), requirement], work, env, 780)
    installed = time.monotonic()
    print(f"\n[{streamlit}] {requirement}: venv {made - started:.1f} s, "
          f"pip install {installed - made:.1f} s", end="", flush=True)
    result = json.loads(run([python, "-I", "runner.py", "quick_start.py"], work, env, 180)
                        .strip().splitlines()[-1])
    version = run([python, "-c", "import safestate; print(safestate.__version__)"], work, env, 60)
    print(f", quick start and version {time.monotonic() - installed:.1f} s "
          f"(streamlit {result['streamlit']})")
    assert pathlib.Path(result["prefix"]).resolve() == venv.resolve()
    assert pathlib.Path(result["safestate"]).resolve().is_relative_to(venv.resolve())
    assert not pathlib.Path(result["safestate"]).resolve().is_relative_to(ROOT.resolve())
    if streamlit == "oldest":
        assert result["streamlit"].startswith(oldest_streamlit()[:-1]), result["streamlit"]
    elif streamlit != "newest":
        assert result["streamlit"].startswith(streamlit + "."), result["streamlit"]
    else:  # pip took the newest: none older than the one this environment has
        assert Version(result["streamlit"]) >= Version(metadata.version("streamlit"))
    assert result["exceptions"] == []
    assert result["errors"] == []
    assert result["finished"], "the quick start stopped before its last line"
    assert version.strip() == VERSION
