"""Launchers: how a job script starts the worker-pool command on the nodes of a block.

    provider.script_for(command) ──launcher(command, tasks_per_node, nodes_per_block)──> text

Names, arguments and behaviour follow Parsl's `parsl.launchers`, so a Parsl config's
`launcher=SingleNodeLauncher()` keeps working.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class Launcher:
    """Base class: a callable that wraps a command for the job script."""

    def __init__(self, debug: bool = True) -> None:
        self.debug = debug

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(debug={self.debug})"


class SimpleLauncher(Launcher):
    """Runs the command once, as it is (a single node)."""

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        if nodes_per_block > 1:
            logger.warning("SimpleLauncher runs one copy of the command; %d nodes were asked for",
                           nodes_per_block)
        return command


class SingleNodeLauncher(Launcher):
    """Runs tasks_per_node * nodes_per_block copies of the command on this node, waits.

    The script exits non-zero when every copy failed (or any, with fail_on_any=True).
    `$CORES` holds the node's core count, as in Parsl.
    """

    def __init__(self, debug: bool = True, fail_on_any: bool = False) -> None:
        super().__init__(debug=debug)
        self.fail_on_any = fail_on_any

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        copies = tasks_per_node * nodes_per_block
        verdict = "$ANYFAILED" if self.fail_on_any else "$ALLFAILED"
        say = 'echo "$@"' if self.debug else ":"
        return f"""export CORES=$(getconf _NPROCESSORS_ONLN)
say() {{ {say}; }}
say "Found cores: $CORES"
CMD() {{
{command}
}}
PIDS=""
for COUNT in $(seq 1 1 {copies}); do
    say "Launching worker pool: $COUNT"
    CMD $COUNT &
    PIDS="$PIDS $!"
done
# Pass a TERM on to the copies, so cancelling the job stops them too.
trap 'kill -TERM $PIDS 2>/dev/null' TERM INT
ALLFAILED=1
ANYFAILED=0
for PID in $PIDS; do
    if wait $PID; then ALLFAILED=0; else ANYFAILED=1; fi
done
say "All worker pools done"
exit {verdict}
"""

    def __repr__(self) -> str:
        return f"SingleNodeLauncher(debug={self.debug}, fail_on_any={self.fail_on_any})"
