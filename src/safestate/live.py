"""Live updates: a session that read a key reruns when someone else changes that key.

Reads of ``shared`` keys and of a session's persisted keys are noted per session
(``read``), with the fragment they ran in. A change (``changed``: a write in this
process, or a commit another replica made, reported by the store) reruns exactly the
sessions that read a changed key in their last run; never the writer itself. Reruns
are coalesced: at most one per session per ``interval`` (0.25 s by default), and none
while the session is running a script (a click's run must not be cut short, and it may
read the new value anyway). Where every read of the changed keys happened inside one
fragment, only that fragment reruns. One thread per app sends the reruns, so a writer
never waits for other sessions. While a session's keys keep changing, the gap between
its reruns doubles up to one second (``SUSTAINED``): a key that changes all the time
costs its readers no more than polling it every second would; a quiet spell resets it.

Live reruns yield to the users' own runs. One is under way at a time per process (one
still running after ``FLIGHT_CAP`` seconds no longer holds up the next), and
together they take at most ``BUDGET`` of the process's time (measured, request to end,
so a loaded process, whose reruns take longer, sends fewer); a burst of ``BURST``
seconds' worth goes out at once. While another session is running a script, or the
process is loaded (its CPU time over the last half second above ``BUSY`` of the wall
time), they wait, each at most ``MAX_DEFER`` seconds. Under load a reader's screen
updates later, and a click's run does not queue behind a crowd of reruns (its own run
shows the new values anyway).

Only reads that show a value count (``safe_get``, a transaction's reads, typed
attributes): the read inside ``mutate``/``increment`` does not. And a run that a live
update started changes nobody else's screen: its writes are echoes (a page that
increments a shared counter on every run would otherwise rerun every reader, who would
increment it, forever). The next run the user starts writes as usual.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import monotonic, process_time

from . import _compat, _events

#: Seconds: at most one rerun of a session per interval (configure(live_interval=...)).
INTERVAL = 0.25
#: Seconds: the longest gap between two reruns of a session while its keys keep changing.
SUSTAINED = 1.0
#: Seconds between two looks at a session whose script is running, before its rerun.
RUNNING_RECHECK = 0.05
#: A rerun of the whole page (not of one fragment).
WHOLE: str = ""
#: The share of the process's time live reruns may take (request to end of each run).
BUDGET = 0.3
#: Seconds of live reruns that may go out at once after a quiet spell.
BURST = 1.0
#: Seconds after which a live rerun no longer holds up the next one (a slow page).
FLIGHT_CAP = 2.0
#: Seconds between two looks at the live rerun under way.
FLIGHT_POLL = 0.005
#: The process's CPU share (CPU seconds per wall second) above which live reruns wait.
BUSY = 0.5
#: Seconds over which that share is measured.
LOAD_WINDOW = 0.5
#: Seconds a live rerun waits at most for the process to be less busy.
MAX_DEFER = 5.0


@dataclass(slots=True, eq=False)
class _Reads:
    """What one session read in its last run: (scope, key) -> fragment ids ("" for the body)."""

    #: The full run the reads are of.
    full_run: object = None
    keys: dict[tuple[str, str], set[str]] = field(default_factory=dict)


class LiveUpdates:
    """Which session read which key, and the thread that reruns them when a key changes."""

    def __init__(
        self, *,
        rerun: Callable[[str, str | None, Callable[[], None], Callable[[object | None], None]],
                        bool] = (
            _compat.request_rerun),
        running: Callable[[str], bool] = _compat.session_running,
        anyone_running: Callable[[], bool] = _compat.any_session_running,
        point: Callable[[], tuple[str, object | None, bool, str | None, object] | None] = (
            _compat.watch_point),
    ) -> None:
        self._rerun = rerun
        self._running = running
        self._anyone_running = anyone_running
        self._point = point
        #: Whether changes rerun readers at all (configure(live=False) turns it off).
        self.enabled = True
        self.interval = INTERVAL
        #: Keys whose changes rerun nobody (configure(live_exclude=[...])).
        self.exclude: frozenset[str] = frozenset()
        self._reads: dict[str, _Reads] = {}
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[str, str] = {}  # session id -> fragment id, or WHOLE
        self._last: dict[str, tuple[float, float]] = {}  # session -> (last rerun, gap)
        # session -> (the runner a live rerun went to, its fragment or WHOLE)
        self._sent: dict[str, tuple[object, str]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        # The live rerun under way: (session, requested at, started); one at a time.
        self._flight: tuple[str, float, bool] | None = None
        self._tokens = BURST  # seconds of live reruns that may go out now
        self._refilled = monotonic()
        self._since: dict[str, float] = {}  # session -> when its pending rerun was asked for
        self._window = (monotonic(), process_time())  # the load measure's start
        self._load = 0.0  # the process's CPU share over the last window
        #: Reruns requested so far (for tests and benchmarks).
        self.reruns = 0

    def configure(self, enabled: bool, interval: float, exclude: Iterable[str]) -> None:
        """Apply the settings in force (``configure(live=, live_interval=, live_exclude=)``)."""
        self.enabled = enabled
        self.interval = interval
        self.exclude = frozenset(exclude)
        if not enabled:
            self._reads.clear()
            self._sent.clear()

    # -- the read side: on every read of a watched key, cheap ----------------------------------
    def read(self, scope: str, key: str) -> None:
        """Note that the calling session's run read ``key`` of ``scope`` (no-op off a run)."""
        if not self.enabled or key in self.exclude:
            return
        point = self._point()
        if point is None:
            return
        session_id, run, full, fragment, _ = point
        reads = self._reads.get(session_id)
        if reads is None:
            reads = self._reads.setdefault(session_id, _Reads())
        if full and run is not None and reads.full_run is not run:
            # A new full run reads everything it shows anew: earlier reads no longer count.
            reads.full_run = run
            reads.keys = {}
        found = reads.keys.get((scope, key))
        if found is None:
            reads.keys[(scope, key)] = {fragment or WHOLE}
        else:
            found.add(fragment or WHOLE)

    def _echo(self, point: tuple[str, object | None, bool, str | None, object]) -> bool:
        """Whether the calling run is one a live update started: the runner the rerun went
        to (a click starts a new one) and the kind of run it asked for."""
        sent = self._sent.get(point[0])
        return (sent is not None and (point[4] is sent[0] or sent[0] is _compat.RUN_STARTING)
                and (sent[1] == WHOLE) == point[2])

    def echo_now(self) -> bool:
        """Whether the calling run was started by a live update (a write in it is an echo)."""
        point = self._point()
        return point is not None and self._echo(point)

    def forget(self, session_id: str) -> None:
        """Drop an ended session's reads."""
        self._reads.pop(session_id, None)
        self._sent.pop(session_id, None)
        with self._cond:
            self._pending.pop(session_id, None)
            self._since.pop(session_id, None)
            self._last.pop(session_id, None)

    # -- the write side -------------------------------------------------------------------------
    def changed(self, scope: str | None, keys: Iterable[str] | None, *,
                by_caller: bool = True) -> int:
        """Rerun the sessions that read one of ``keys`` of ``scope``; return how many.

        ``keys`` None: any key of ``scope``; ``scope`` None: anything (a store's listener
        missed messages). ``by_caller``: the calling session made the change, so it is
        not rerun (a worker thread, or a commit from another replica, has no session).
        """
        if not self.enabled or not self._reads:
            return 0
        wanted = None if keys is None else {k for k in keys if k not in self.exclude}
        if wanted is not None and not wanted:
            return 0
        writer = None
        if by_caller:
            point = self._point()
            if point is not None:
                writer = point[0]
                if self._echo(point):
                    return 0  # a write in a run a live update started: an echo
        targets: dict[str, str] = {}
        for session_id, reads in list(self._reads.items()):
            if session_id == writer:
                continue
            fragments: set[str] = set()
            for (read_scope, key), where in list(reads.keys.items()):
                if (scope is None or read_scope == scope) and (wanted is None or key in wanted):
                    fragments |= where
            if fragments:
                targets[session_id] = next(iter(fragments)) if len(fragments) == 1 else WHOLE
        if targets:
            self._schedule(targets)
        return len(targets)

    def _schedule(self, targets: dict[str, str]) -> None:
        with self._cond:
            if self._closed:
                return
            now = monotonic()
            for session_id, fragment in targets.items():
                self._since.setdefault(session_id, now)
                known = self._pending.get(session_id)
                # Two different fragments, or a fragment and the body: the whole page.
                self._pending[session_id] = (fragment if known is None or known == fragment
                                             else WHOLE)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="safestate-live",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        """Send due reruns, one at a time and within the budget; wait for the next one due."""
        while True:
            try:
                with self._cond:
                    if self._closed:
                        return
                    picked = None
                    wait = self._landed(monotonic())
                    if wait is None:
                        picked, wait = self._pick(monotonic())
                    if picked is None:
                        self._cond.wait(None if wait is None or wait == math.inf else wait)
                        continue
                    session_id, fragment = picked
                    self._flight = (session_id, monotonic(), False)
                self._send(session_id, fragment)
            except Exception:  # the one thread for every session's live updates must go on
                _events.log.exception("safestate: the live update thread hit an error")
                with self._cond:
                    self._flight = None
                    self._cond.wait(RUNNING_RECHECK)  # not a hot loop if it keeps failing

    def _landed(self, now: float) -> float | None:
        """Settle the rerun under way; seconds to wait while it runs, else None (caller holds
        the lock). Its time, request to end, is taken from the budget."""
        flight = self._flight
        if flight is None:
            return None
        session_id, at, started = flight
        if now - at < FLIGHT_CAP and (not started or self._running(session_id)):
            return FLIGHT_POLL
        self._flight = None
        self._tokens -= now - at
        return None

    def _pick(self, now: float) -> tuple[tuple[str, str] | None, float | None]:
        """The next session to rerun, or why to wait: (pick, None) or (None, seconds)."""
        self._tokens = min(BURST, self._tokens + (now - self._refilled) * BUDGET)
        self._refilled = now
        if self._tokens < 0:
            return None, -self._tokens / BUDGET
        if self._pending and (self._loaded(now) or self._anyone_running()):
            oldest = min((self._since.get(sid, now) for sid in self._pending), default=now)
            if now - oldest < MAX_DEFER:
                return None, RUNNING_RECHECK
        wait = math.inf
        for session_id, fragment in list(self._pending.items()):
            last, gap = self._last.get(session_id, (-math.inf, self.interval))
            at = last + gap
            if at > now:
                wait = min(wait, at - now)
            elif self._running(session_id):
                wait = min(wait, RUNNING_RECHECK)
            else:
                del self._pending[session_id]
                self._since.pop(session_id, None)
                # Changes that keep coming (the last rerun was due within two gaps) double
                # the gap, up to SUSTAINED: a busy key then costs a reader no more than
                # polling it once a second would. A quiet spell resets it.
                busy = now - last < 2 * gap
                gap = min(2 * gap, max(SUSTAINED, self.interval)) if busy else self.interval
                self._last[session_id] = (now, gap)
                return (session_id, fragment), None
        return None, wait

    def _loaded(self, now: float) -> bool:
        """Whether the process used more than BUSY of a core over the last window."""
        started, cpu = self._window
        if now - started >= LOAD_WINDOW:
            spent = process_time()
            self._load = (spent - cpu) / (now - started)
            self._window = (now, spent)
        return self._load > BUSY

    def _send(self, session_id: str, fragment: str) -> None:
        # Before the request: the rerun may start (and read) at once.
        self._sent.pop(session_id, None)
        self._rerunning(session_id, fragment)
        try:
            sent = self._rerun(session_id, fragment or None,
                               functools.partial(self._busy, session_id, fragment),
                               functools.partial(self._mark, session_id, fragment))
        except Exception:  # one session's failure must not stop the others' reruns
            _events.log.exception("safestate: a live rerun of session %s failed",
                                  _events.session_label(session_id))
            with self._cond:
                self._flight = None
            return
        if sent:
            self.reruns += 1
            return
        with self._cond:
            self._flight = None
        self.forget(session_id)  # the session is gone

    def _rerunning(self, session_id: str, fragment: str) -> None:
        """A rerun is on its way: what it reads will be noted anew (a page that no longer
        reads a key, after a page switch, is not rerun for it again)."""
        reads = self._reads.get(session_id)
        if reads is None:
            return
        if fragment == WHOLE:
            reads.keys = {}
            reads.full_run = None
            return
        for key, where in list(reads.keys.items()):
            where.discard(fragment)
            if not where:
                reads.keys.pop(key, None)

    def _mark(self, session_id: str, fragment: str, runner: object | None) -> None:
        """The rerun goes to ``runner``: that run's writes are echoes. ``RUN_STARTING``: it is
        being requested (it may write before the runner is known); None: it did not start."""
        if runner is None:
            self._sent.pop(session_id, None)
        else:
            self._sent[session_id] = (runner, fragment)
        if runner is _compat.RUN_STARTING:
            return
        with self._cond:
            flight = self._flight
            if flight is not None and flight[0] == session_id:
                self._flight = None if runner is None else (session_id, flight[1], True)
            self._cond.notify()

    def _busy(self, session_id: str, fragment: str) -> None:
        """A run started before the rerun was made (a click): rerun after it instead."""
        self._sent.pop(session_id, None)
        with self._cond:
            if self._flight is not None and self._flight[0] == session_id:
                self._flight = None  # nothing ran: nothing to take from the budget
        self._schedule({session_id: fragment})

    def prune(self, ended: Callable[[str], bool]) -> int:
        """Forget the sessions ``ended`` says are over (the sweeper's round); return how many."""
        gone = [sid for sid in list(self._reads) if ended(sid)]
        for sid in gone:
            self.forget(sid)
            self._sent.pop(sid, None)
        return len(gone)

    def watching(self, session_id: str) -> list[tuple[str, str]]:
        """The (scope, key) pairs a session's last run read (for tests and the health page)."""
        reads = self._reads.get(session_id)
        return [] if reads is None else sorted(reads.keys)

    def close(self) -> None:
        """Stop the rerun thread (an app being replaced, as in tests)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
