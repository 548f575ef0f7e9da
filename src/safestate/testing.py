"""Test support: run a block against a fresh, isolated safestate app.

``with fresh_app() as app:`` builds a new state layer (no sessions, no shared state,
no declared keys, no configuration), points ``safestate``'s names at it for the block,
then puts the previous one back and closes the fresh one. A pytest fixture::

    @pytest.fixture(autouse=True)
    def app():
        with safestate.testing.fresh_app() as app:
            yield app
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import safestate

from .app import App, build_app


def use_app(app: App) -> App:
    """Bind ``safestate``'s names to ``app``; return the app they were bound to.

    Code that imported a name before (``from safestate import safe_set``) keeps the old
    one: this is for tests whose app scripts import safestate when they run.
    """
    return safestate._bind(app)


@contextmanager
def fresh_app(**options: Any) -> Iterator[App]:
    """A new app (``build_app(**options)``) in force for the block. Raises as build_app."""
    app = build_app(**options)
    previous = use_app(app)
    try:
        yield app
    finally:
        use_app(previous)
        app.close()
