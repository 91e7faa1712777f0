"""The kernel's end of the interchange pipes (pipes.py): what a thread that reads them
must not be cut off in the middle of."""

from __future__ import annotations

import os
import signal
import time

import pytest

from livedag.executors.htex.pipes import interrupts_after


def test_a_sigint_while_messages_are_handled_is_raised_after_them() -> None:
    handled: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_after():
            os.kill(os.getpid(), signal.SIGINT)  # Jupyter's "interrupt the kernel"
            time.sleep(0.05)
            handled.append("all of them")
        time.sleep(1.0)  # (the handler runs at the next bytecode: this is not reached)
    assert handled == ["all of them"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
