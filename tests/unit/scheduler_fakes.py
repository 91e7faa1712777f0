"""Recorded scheduler output for the provider unit tests, served in place of run_command.

The Slurm and Grid Engine texts were recorded from the real test clusters
(scripts/cluster/*-start.sh); PBS Pro, LSF and HTCondor cannot run here, so their texts
are written from the tools' documented output formats and marked so where they are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from livedag.providers.batch import CommandResult


class FakeTools:
    """Answers each command by its tool name (argv[0]) from queued replies; records argv."""

    def __init__(self) -> None:
        self.replies: dict[str, list[tuple[int, str, str]]] = {}
        self.calls: list[tuple[str, ...]] = []

    def reply(self, tool: str, stdout: str = "", stderr: str = "", rc: int = 0) -> FakeTools:
        self.replies.setdefault(tool, []).append((rc, stdout, stderr))
        return self

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(argv)
        queue = self.replies.get(argv[0])
        if not queue:
            pytest.fail(f"unexpected command {argv}")
        rc, out, err = queue.pop(0) if len(queue) > 1 else queue[0]
        return CommandResult(argv, rc, out, err)

    def tools(self) -> list[str]:
        return [c[0] for c in self.calls]


def install(monkeypatch: pytest.MonkeyPatch, module: str) -> FakeTools:
    fake = FakeTools()
    monkeypatch.setattr(f"livedag.providers.{module}.run_command", fake)
    monkeypatch.setattr("livedag.providers.batch.run_command", fake)
    return fake
