"""Parked tasks: tasks whose inputs are results still to come (protocol.Forward).

    kernel ──Forward(B, waits=[A])──> interchange
        A at one pool (running, queued or parked there) ──Forward──> that pool parks B
        otherwise (A queued or parked in the interchange, or inputs at several pools)
                                                         ──> the interchange parks B
    A succeeds ──> B's payload + A's result ──> first in line (of the pool, or the
                   interchange's queue)
    A fails, dies, is lost or withdrawn ──> B, and what was parked on B, go back to the
                   kernel: Returned(payloads), then Unforwarded(keys)
    Cancel of B ──> whoever parks B withdraws it (a pool answers with a CancelReply)

A chain of tasks parked at a pool runs step after step in that pool: worker -> pool ->
worker, without the interchange or the kernel in between (they are told of each result
as before, but the next step does not wait for them). Nothing here unpickles: results
and payloads are joined as bytes (protocol.forwarded_payload). The interchange keeps a
Parking per pool too, without the results, to know what each pool holds.
"""

from __future__ import annotations

import collections
import dataclasses

from livedag.executors.htex.protocol import forwarded_payload

Key = tuple[int, int]


@dataclasses.dataclass(eq=False, slots=True)
class _Parked:
    payload: bytes
    waits: set[Key]
    inputs: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)


class Parking:
    def __init__(self, keep_inputs: bool = True) -> None:
        self.keep_inputs = keep_inputs
        self.parked: dict[Key, _Parked] = {}
        self.waiters: dict[Key, list[Key]] = {}  # input try -> tasks parked on it

    def __len__(self) -> int:
        return len(self.parked)

    def __contains__(self, key: Key) -> bool:
        return key in self.parked

    def park(self, key: Key, waits: list[Key], payload: bytes,
             inputs: list[tuple[int, bytes]] | None = None) -> None:
        """Park `key` until each of `waits` succeeds (`inputs`: results it has already)."""
        self.parked[key] = _Parked(payload, set(waits), inputs or [])
        for w in set(waits):
            self.waiters.setdefault(w, []).append(key)

    def succeeded(self, key: Key, outcome: bytes) -> list[tuple[Key, bytes]]:
        """`key` succeeded with these result bytes: the tasks that now have every input,
        with their payloads to run (forwarded, or as parked without keep_inputs)."""
        ready = []
        for waiting in self.waiters.pop(key, ()):
            parked = self.parked.get(waiting)
            if parked is None:
                continue
            if self.keep_inputs:
                parked.inputs.append((key[0], bytes(outcome)))
            parked.waits.discard(key)
            if not parked.waits:
                del self.parked[waiting]
                ready.append((waiting, forwarded_payload(parked.payload, parked.inputs)
                              if self.keep_inputs else parked.payload))
        return ready

    def failed(self, key: Key) -> list[tuple[Key, bytes]]:
        """`key` will not succeed here (failed, lost, withdrawn): every task parked on it,
        directly or through another parked task, with its original payload, to be given
        back to the kernel."""
        out: list[tuple[Key, bytes]] = []
        todo = [key]
        while todo:
            for waiting in self.waiters.pop(todo.pop(), ()):
                parked = self.parked.pop(waiting, None)
                if parked is None:
                    continue
                self._unlink(waiting, parked)
                out.append((waiting, parked.payload))
                todo.append(waiting)
        return out

    def pop(self, key: Key) -> bytes | None:
        """Take one parked task out (not those parked on it); its payload."""
        parked = self.parked.pop(key, None)
        if parked is None:
            return None
        self._unlink(key, parked)
        return parked.payload

    def withdraw(self, key: Key) -> list[tuple[Key, bytes]]:
        """Take a parked task out (a Cancel), with the tasks parked on it; [] if it is not
        parked. The first entry is `key` itself."""
        parked = self.parked.pop(key, None)
        if parked is None:
            return []
        self._unlink(key, parked)
        return [(key, parked.payload), *self.failed(key)]

    def _unlink(self, key: Key, parked: _Parked) -> None:
        for w in parked.waits:
            waiting = self.waiters.get(w)
            if waiting is not None and key in waiting:
                waiting.remove(key)
                if not waiting:
                    del self.waiters[w]


class Recent:
    """The latest results that went by (key -> result bytes, or None when only the key is
    kept), oldest first out: a Forward may arrive just after an input's result passed
    (the kernel had not heard of it yet), and can still be served."""

    COUNT = 64
    MAX_RESULT = 64 << 10  # bytes: bigger results are not kept (their Forward goes back)

    def __init__(self) -> None:
        self.items: collections.OrderedDict[Key, bytes | None] = collections.OrderedDict()

    def add(self, key: Key, outcome: bytes | None) -> None:
        if outcome is not None and len(outcome) > self.MAX_RESULT:
            return
        items = self.items
        items[key] = None if outcome is None else bytes(outcome)
        if len(items) > self.COUNT:
            items.popitem(last=False)

    def __contains__(self, key: Key) -> bool:
        return key in self.items

    def get(self, key: Key) -> bytes | None:
        return self.items.get(key)
