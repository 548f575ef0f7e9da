"""`make structure`: the figures of safestate's structure that docs/architecture.md quotes.

Prints the import cycles between safestate's modules (lazy imports inside functions
count; imports made only for type checking do not), the writes to another object's
private attributes, the names in ``safestate.__all__``, and the longest module and
function. ``--src DIR`` measures another checkout's ``src`` (e.g. an older commit).
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).parent
#: ``x._name = ...``: a private attribute written; wiring when ``x`` is not ``self`` or ``cls``.
PRIVATE_WRITE = re.compile(r"(?<![\w.])(\w+(?:\.\w+)*)\._[a-z]\w*\s*=(?!=)")


def import_cycles(src: pathlib.Path, type_only: bool = False) -> list[list[str]]:
    """Groups of safestate modules that import each other in a cycle, via grimp.

    ``type_only``: count imports made only for type checking too.
    """
    code = (
        "import sys, grimp\n"
        "g = grimp.build_graph('safestate', cache_dir=None,\n"
        f"                      exclude_type_checking_imports={not type_only})\n"
        "for m in sorted(g.modules):\n"
        "    for i in sorted(g.find_modules_directly_imported_by(m)):\n"
        "        print(m, i)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(src), "PATH": ""}).stdout
    edges: dict[str, set[str]] = {}
    for line in out.splitlines():
        a, b = line.split()
        edges.setdefault(a, set()).add(b)
    return _strongly_connected(edges)


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's algorithm; components of two or more modules are cycles.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_writes(src: pathlib.Path) -> list[str]:
    """Lines that assign another object's private attribute."""
    hits = []
    for path in sorted((src / "safestate").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            found = PRIVATE_WRITE.search(line.split("#")[0])
            if found and found.group(1) not in ("self", "cls"):
                hits.append(f"{path.relative_to(src)}:{n}: {line.strip()}")
    return hits


def top_level_names(src: pathlib.Path) -> int:
    code = "import safestate; print(len(safestate.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(src), "PATH": ""}).stdout
    return int(out)


def longest(src: pathlib.Path) -> tuple[tuple[int, str], tuple[int, str]]:
    """(lines, module) of the longest module and (lines, name) of the longest function."""
    modules = []
    functions = []
    for path in sorted((src / "safestate").rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(src))
        modules.append((len(text.splitlines()), name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                functions.append((size, f"{name}:{node.name}"))
    return max(modules), max(functions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=pathlib.Path, default=HERE.parent / "src")
    src = parser.parse_args().src.resolve()
    cycles = import_cycles(src)
    typed_cycles = import_cycles(src, type_only=True)
    writes = private_writes(src)
    (mod_lines, mod), (fn_lines, fn) = longest(src)
    print(f"import cycles: {len(cycles)}")
    for group in cycles:
        print("  " + " <-> ".join(m.removeprefix("safestate.") for m in group))
    print(f"import cycles counting imports made only for type checking: {len(typed_cycles)}")
    for group in typed_cycles:
        print("  " + " <-> ".join(m.removeprefix("safestate.") for m in group))
    print(f"writes to another object's private attributes: {len(writes)}")
    for hit in writes:
        print("  " + hit)
    print(f"names in safestate.__all__: {top_level_names(src)}")
    print(f"longest module: {mod} ({mod_lines} lines)")
    print(f"longest function: {fn} ({fn_lines} lines)")


if __name__ == "__main__":
    main()
