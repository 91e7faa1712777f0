"""The DAG widget: the kernel's event stream, folded and sent to the browser at a bounded rate.

    EventBus thread ──batch──> inbox ──> Graph.apply + Timeline.apply (pusher, under the lock)
                                   │ wake
                                   v
    pusher thread (one per widget): every `interval` s ── Graph.diff() ──> self.diff (synced)
                                   (+ Timeline.diff() as diff["timeline"])
          ^  └─ runs commands: dfk.resubmit / dfk.cancel, answers in the next diff's "acks"
          │ queue
    comm handler (a kernel subshell while a cell is busy) <── {"type": "resubmit", ...}
                                                               (cancel, drill, ...)

    page (re)load ── request_state ──> get_state() ──> a fresh Graph.snapshot() ──> browser
                                                       (+ Timeline.snapshot())

The engine comes first: while events keep arriving, a round folds for at most
`busy_share` of the interval (2.5%: 3.75 ms of every 150 ms; at 5%, 20,000 no-op tasks on
threads ran 6-10% slower, bench/widget.py) and leaves the rest in the inbox; the first
round with no new events folds everything. Under a storm of tiny tasks the view
runs behind by up to a few seconds instead of taking the kernel's time; with tasks that
take milliseconds or more the budget is never reached. flush() and a page (re)load fold
everything at once.

Widget state is changed from the pusher thread only (recipes: traitlet changes from a
background thread reach the browser while a cell is busy). The browser's detail panel reads
synced state, so a click needs no kernel round trip; only resubmit/cancel reach Python.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from livedag import events as ev
from livedag.jupyter.graph import Graph, seed_events
from livedag.jupyter.timeline import Timeline

logger = logging.getLogger("livedag.jupyter")


def _asset(name: str) -> str:
    """widgets/NAME: inside the wheel (livedag/_widgets) or beside the package (editable)."""
    packaged = resources.files("livedag") / "_widgets" / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[2] / "widgets" / name
    return source.read_text(encoding="utf-8")


class DagWidget(anywidget.AnyWidget):
    """The live DAG of one DataFlowKernel."""

    _esm = _asset("dag.js")
    _css = _asset("dag.css")
    # The front end is plain ES module code with no version of its own to match: accept any
    # anywidget in the server (recipes: a mismatch otherwise leaves "Loading widget...").
    _model_module_version = traitlets.Unicode("*").tag(sync=True)
    _view_module_version = traitlets.Unicode("*").tag(sync=True)

    uid = traitlets.Unicode().tag(sync=True)
    diff = traitlets.Dict().tag(sync=True)
    snapshot = traitlets.Dict().tag(sync=True)  # filled in get_state(), see below
    height = traitlets.Int(480).tag(sync=True)

    def __init__(
        self,
        dfk: Any,
        *,
        interval: float = 0.15,
        aggregate_above: int = 2000,
        busy_share: float = 0.025,
        **kwargs: Any,
    ) -> None:
        self._lock = threading.Lock()
        self.graph = Graph(aggregate_above=aggregate_above)
        self.timeline = Timeline()
        self.dfk = dfk
        self.interval = interval
        self._commands: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._acks: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._inbox: collections.deque[Sequence[ev.Event]] = collections.deque()
        self._folding: Iterator[ev.Event] | None = None  # the batch being folded
        self._delivered = 0  # batches the bus has handed over (see _push_loop)
        # While events keep coming, each round folds for at most this long (seconds):
        # the engine's tasks come first, the view catches up when they pause.
        self.fold_budget = interval * busy_share
        self._stopping = False
        super().__init__(uid=uuid.uuid4().hex, **kwargs)
        _route_replies_to_sender(self)
        self.on_msg(self._on_frontend_msg)
        # Subscribe first, then seed: an event in between is applied after the seed, in order.
        # The browser is updated every 150 ms anyway: gather events for 20 ms per batch.
        self._sub = dfk.bus.subscribe(self._on_events, name="jupyter-widget", delay=0.02)
        with self._lock:
            records = list(dfk.tasks.values())
            self.graph.apply(seed_events(records))
            self.timeline.seed(records)  # from the tries' own times, not the seed's
        self._thread = threading.Thread(target=self._push_loop, name="livedag-widget",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ engine side
    def _on_events(self, batch: Sequence[ev.Event]) -> None:
        # The bus thread only hands the batch over: folding waits for the pusher's next
        # round, so a burst of tasks shares the GIL with as little of us as possible.
        self._inbox.append(batch)
        self._delivered += 1
        if not self._wake.is_set():
            self._wake.set()

    def _fold(self, budget: float | None = None) -> bool:
        """Fold what the bus delivered (call with the lock held). With a budget (seconds),
        stop once it is spent: False if some events wait for the next round."""
        inbox = self._inbox
        deadline = None if budget is None else time.perf_counter() + budget
        while True:
            events = self._folding
            if events is None:
                if not inbox:
                    return True
                events = self._folding = iter(inbox.popleft())
            # Each event is built once for both views, a few hundred at a time: events
            # alive together are what makes the garbage collector run (events.Batch).
            while chunk := list(itertools.islice(events, 256)):
                self.graph.apply(chunk)
                self.timeline.apply(chunk)
                last = chunk[-1]
                if type(last) is ev.KernelChanged and last.state == "cleanup":
                    self._stopping = True
                if deadline is not None and time.perf_counter() >= deadline:
                    return False
            self._folding = None

    def settled(self, timeout: float = 0.0) -> Graph:
        """The view model with every delivered event folded in (read it, don't keep it);
        with a timeout, first wait for the bus to deliver what was published so far."""
        if timeout:
            self._sub.flush(timeout)
        with self._lock:
            self._fold()
        return self.graph

    def cell_started(self, origin: str | None) -> None:
        """The extension says a cell starts: its earlier tasks are superseded."""
        with self._lock:
            self._fold()
            self.graph.cell_started(origin)
        self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event published so far is folded and sent to the browser."""
        if not self._sub.flush(timeout):
            return False
        done = threading.Event()
        self._commands.put({"type": "_flush", "done": done})
        self._wake.set()
        return done.wait(timeout)

    # ------------------------------------------------------------ the pusher thread
    def _push_loop(self) -> None:
        seen = self._delivered
        while True:
            self._wake.wait()
            self._wake.clear()
            waiters = self._run_commands()
            # Events arrived since the last round: the engine is busy, fold within the
            # budget. Quiet (or someone waits in flush()): fold everything.
            busy = self._delivered != seen and not waiters
            seen = self._delivered
            try:
                self._push(self.fold_budget if busy else None)
            except Exception:  # e.g. the comm went away with the kernel
                logger.exception("livedag widget: sending an update failed")
            for done in waiters:
                done.set()
            if self._stopping or self.comm is None:
                return
            # Coalesce: whatever arrives in the next interval goes in one diff.
            threading.Event().wait(self.interval)

    def _push(self, budget: float | None = None) -> None:
        with self._lock:
            if not self._fold(budget):
                self._wake.set()  # more to fold: come back after the interval
            if not (self.graph.dirty or self.timeline.dirty or self._acks):
                return
            d = self.graph.diff()
            more = d.get("more", False)
            if self.timeline.dirty:
                d["timeline"] = self.timeline.diff(time.time())
                more = more or d["timeline"]["more"]
        if self._acks:
            d["acks"], self._acks = self._acks, []
        self.diff = d
        if more:
            self._wake.set()

    def _run_commands(self) -> list[threading.Event]:
        waiters: list[threading.Event] = []
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return waiters
            if cmd["type"] == "_flush":
                waiters.append(cmd["done"])
                continue
            if cmd["type"] == "resync":
                self.send_state("snapshot")
                continue
            try:
                text = self._run_command(cmd)
                ok = True
            except Exception as exc:
                logger.info("livedag widget: %s failed", cmd, exc_info=True)
                text, ok = f"{type(exc).__name__}: {exc}", False
            if text is None:
                continue  # a quiet command: the page shows its effect, not a status line
            self._acks.append({"cmd": cmd.get("cmd"), "ok": ok, "text": text})

    def _run_command(self, cmd: dict[str, Any]) -> str | None:
        kind = cmd["type"]
        dfk = self.dfk
        if kind == "resubmit":
            tid = int(cmd["id"])
            dfk.resubmit(tid, use_latest_definition=True)
            return f"task {tid} resubmitted"
        if kind == "cancel":
            tid = int(cmd["id"])
            record = dfk.tasks.get(tid)
            fut = record.app_fu if record is not None else None
            if fut is None:
                raise KeyError(f"task {tid} is no longer known to the kernel")
            if not dfk.cancel(fut):
                if record is not None and record.state.value == "launched":
                    # Handed to a worker pool ahead of its start (prefetch): it will run.
                    return (f"task {tid} is already with a worker pool, about to start: "
                            "it cannot be cancelled")
                return f"task {tid} has already started: it cannot be cancelled"
            return f"task {tid} cancelled"
        if kind == "pin":
            with self._lock:
                self._fold()
                self.graph.pin(int(cmd["id"]))
            return None
        if kind == "drill":
            key = cmd.get("key")
            with self._lock:
                self._fold()
                self.graph.focus_on(key if isinstance(key, str) else None)
                focus = self.graph.focus_json()
            if focus is None:
                return "overview"
            shown, total = focus["shown"], focus["total"]
            part = f"{shown} tasks" if shown == total else f"the newest {shown} of {total} tasks"
            return f"showing {part} of {focus['app']} · {focus['label']}"
        if kind == "resubmit_failed":
            with self._lock:
                self._fold()
                ids = self.graph.failed_ids()
            done = []
            for tid in ids:
                record = dfk.tasks.get(tid)
                if record is not None and record.state.value == "failed":
                    dfk.resubmit(tid, use_latest_definition=True)
                    done.append(tid)
            return f"resubmitted {len(done)} failed task{'s' if len(done) != 1 else ''}"
        raise ValueError(f"unknown command {kind!r}")

    # ------------------------------------------------------------ browser side
    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # Runs on a kernel subshell while a cell is busy (ipykernel >= 7): only enqueue.
        if isinstance(content, dict) and isinstance(content.get("type"), str):
            self._commands.put(content)
            self._wake.set()

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """A page that (re)loads asks for the whole state: give it the whole view then."""
        state: dict[str, Any] = super().get_state(key, drop_defaults=drop_defaults)
        keys = [key] if isinstance(key, str) else key
        if keys is None or "snapshot" in keys:
            with self._lock:
                self._fold()
                state["snapshot"] = self.graph.snapshot()
                state["snapshot"]["timeline"] = self.timeline.snapshot(time.time())
        return state

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, plus a PNG and a text summary for where widgets don't render."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if data is None:
            return bundle
        try:
            from livedag.jupyter.render import png_bytes

            with self._lock:
                self._fold()
                data["text/plain"] = self.graph.summary()
                png = png_bytes(self.graph)
            import base64

            data["image/png"] = base64.b64encode(png).decode("ascii")
        except Exception:
            logger.exception("livedag widget: the static picture failed")
        return bundle

    def close(self) -> None:
        self._stopping = True
        sub = getattr(self, "_sub", None)
        if sub is not None:
            sub.close()
        self._wake.set()
        super().close()


def _route_replies_to_sender(widget: DagWidget) -> None:
    """ipykernel 7.4 routes a comm's incoming messages to the subshell that last *published*
    on it; the pusher thread publishes with the main shell as parent, so clicks would wait
    for a busy cell. Route each message to the subshell it was sent on instead.
    Private API (ipykernel/comm/comm.py, BaseComm._reply_subshell_for): guarded, and
    tests/browser/test_widget.py::test_click_while_cell_busy fails if it stops working."""
    comm = widget.comm
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda data, default: default
