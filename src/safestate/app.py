"""The composition root: the one place that builds an app's state layer, piece by piece.

The order is the dependency order: settings (read lazily, on first use, from
``configure()``, secrets or the environment) and the backends they open, then the
shared state and the session manager that read those backends, then the validator
over the manager. Each piece gets what it needs through its constructor; nothing
reaches into another afterwards. The package builds one ``App`` at import; tests build
a fresh one each (``safestate.testing.fresh_app``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._locks import LockRegistry
from .config import Configuration, read_deployment
from .live import LiveUpdates
from .manager import SWEEP_INTERVAL, SessionStateManager, new_record
from .schema import SchemaRegistry
from .session_end import SessionEndHooks
from .shared_state import SharedState
from .validator import SessionValidator


@dataclass(frozen=True)
class App:
    """One app's whole state layer: what ``safestate``'s names are bound to."""

    configuration: Configuration
    shared: SharedState
    manager: SessionStateManager
    validator: SessionValidator

    def close(self) -> None:
        """Stop its sweeper thread, tear down its app-wide dependencies and close its store
        (an app being replaced, as in tests). Ends no session: no session end hook runs."""
        self.manager.close()
        self.validator.dependencies.close()
        self.configuration.close()


def build_app(
    *,
    deployment: Callable[[], Mapping[str, Any]] = read_deployment,
    sweep_interval: float = SWEEP_INTERVAL,
) -> App:
    """A new, independent state layer: its own sessions, shared state, schema and settings.

    ``deployment`` gives the settings a deployment sets (default: ``st.secrets`` and
    ``SAFESTATE_*`` variables); ``sweep_interval`` is how often ended sessions are freed.
    """
    schema = SchemaRegistry()
    live = LiveUpdates()  # who read what: a change reruns the sessions that showed it
    configuration = Configuration(schema, deployment, live)  # settings -> store -> persistence
    shared = SharedState(configuration.backends, on_first_use=configuration.ensure, live=live)
    manager = SessionStateManager(
        shared, configuration.backends, schema,
        registry=LockRegistry(make_record=new_record),
        on_first_call=configuration.ensure, sweep_interval=sweep_interval,
        session_end=SessionEndHooks(), live=live,
    )
    return App(configuration, shared, manager, SessionValidator(manager))
