"""`make test-compat`: the core suite against several Streamlit versions, each in its own venv.

Each version gets a venv in `.compat/<version>` with `streamlit==<version>.*` (or the newest
release, for "newest"), safestate installed from this checkout and the test extra; then the
suite runs there without the browser, cluster and load tests (they need Playwright, HAProxy
and minutes of load, and test the deployment more than the Streamlit internals). A venv is
reused while pyproject.toml is unchanged. Prints one line per version and exits non-zero if
any version failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = ["1.40", "1.45", "1.52", "1.60", "newest"]
#: Not run per version: they need a browser, a load balancer or minutes of load.
NOT_CORE = ["tests/test_browser.py", "tests/test_cluster.py", "tests/test_loadtest.py"]
SUMMARY = re.compile(r"^(?:=+ )?(\d+ (?:passed|failed|skipped|error).*) in ([\d.]+)s")


def version_spec(version: str) -> str:
    """A pip requirement for ``version``: "1.40" -> "streamlit==1.40.*"; "newest" -> any."""
    if version == "newest":
        return "streamlit"
    if not re.fullmatch(r"1\.\d+", version):
        raise SystemExit(f"compat: {version!r} is not a Streamlit minor such as 1.40, "
                         "or 'newest'")
    return f"streamlit=={version}.*"


def venv_for(version: str) -> pathlib.Path:
    """The venv of ``version``, created or brought up to date (pip's cache keeps it quick)."""
    venv = ROOT / ".compat" / version
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    fresh = stamp.exists() and stamp.read_text() == want
    if fresh and version != "newest":
        return venv
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # The newest release is looked up on every run: a new Streamlit is what this catches.
    done = subprocess.run([*pip, "--upgrade", version_spec(version), "-e", f"{ROOT}[test]"],
                          capture_output=True, text=True,
                          env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"})
    if done.returncode != 0:  # pip's own words; its warnings are noise otherwise
        raise SystemExit(f"compat: pip could not install {version_spec(version)}:\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    stamp.write_text(want)
    return venv


def installed(venv: pathlib.Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import streamlit; print(streamlit.__version__)"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def run(version: str, pytest_args: list[str]) -> tuple[bool, str]:
    started = time.monotonic()
    venv = venv_for(version)
    setup = time.monotonic() - started
    cmd = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
           *(f"--ignore={path}" for path in NOT_CORE), *pytest_args]
    print(f"compat: Streamlit {installed(venv)} ({version}): {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True,
                          env={**os.environ, "COMPAT_CORE_ONLY": "1"})  # conftest.CORE_ONLY
    log = ROOT / ".compat" / f"{version}.log"
    log.write_text(proc.stdout + proc.stderr)
    lines = [m for line in proc.stdout.splitlines() if (m := SUMMARY.match(line))]
    summary = lines[-1][1] if lines else "no summary"
    ok = proc.returncode == 0
    if not ok:
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
    return ok, (f"Streamlit {installed(venv):8} {'passed' if ok else 'FAILED':6}  {summary}; "
                f"set-up {setup:.0f} s, tests {time.monotonic() - started - setup:.0f} s  "
                f"(log: {log.relative_to(ROOT)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", default=SAMPLE,
                        help="Streamlit minors such as 1.40, or 'newest' (default: %(default)s)")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments, one string")
    args = parser.parse_args()
    results = [run(v, args.pytest_args.split()) for v in args.versions]
    print("\ncompat: the core suite per Streamlit version")
    for _, line in results:
        print("  " + line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
