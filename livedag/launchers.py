"""Launchers: how a job script starts the worker-pool command on the nodes of a block.

    provider.script_for(command) ──launcher(command, tasks_per_node, nodes_per_block)──> text

Names, arguments and behaviour follow Parsl's `parsl.launchers`, so a Parsl config's
`launcher=SingleNodeLauncher()` keeps working.

SrunLauncher and MpiExecLauncher start one copy per task slot on every node of a batch
job: the command is written to cmd_<job>.sh in the job's working directory (the run dir)
and started by srun / mpiexec. `srun --export=ALL`: a job submitted with `--export=NONE`
would otherwise give every task an empty environment (no PATH, no LIVEDAG_PYTHON), and
the worker pool could not start.
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

def _command_file(command: str, *, job_var: str, marker: str) -> str:
    """Shell lines that write `command` to ./cmd_<job>.sh; the file name is in $CMD_FILE."""
    return f"""CMD_FILE="$PWD/cmd_${{{job_var}:-$$}}.sh"
cat > "$CMD_FILE" << '{marker}'
{command}
{marker}
chmod u+x "$CMD_FILE"
"""


class SrunLauncher(Launcher):
    """Runs tasks_per_node * nodes_per_block copies of the command with one `srun`."""

    def __init__(self, debug: bool = True, overrides: str = "") -> None:
        super().__init__(debug=debug)
        self.overrides = overrides

    def __call__(
        self, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str = ""
    ) -> str:
        tasks = tasks_per_node * nodes_per_block
        say = 'echo "$@"' if self.debug else ":"
        return f"""set -e
export CORES=$SLURM_CPUS_ON_NODE
export NODES=$SLURM_JOB_NUM_NODES
say() {{ {say}; }}
say "Found cores: $CORES"
say "Found nodes: $NODES"
{_command_file(command, job_var="SLURM_JOB_ID", marker="LIVEDAG_SRUN_EOF")}
srun --export=ALL --ntasks {tasks} -l {self.overrides} bash "$CMD_FILE"
say "All worker pools done"
"""

    def __repr__(self) -> str:
        return f"SrunLauncher(debug={self.debug}, overrides={self.overrides!r})"


class MpiExecLauncher(Launcher):
    """Runs tasks_per_node * nodes_per_block copies of the command with `mpiexec`, on the
    hosts of $PBS_NODEFILE (or localhost when there is none)."""

    def __init__(
        self, debug: bool = True, bind_cmd: str = "--bind-to", overrides: str = ""
    ) -> None:
        super().__init__(debug=debug)
        self.bind_cmd = bind_cmd
        self.overrides = overrides

    def __call__(
        self, command: str, tasks_per_node: int, nodes_per_block: int, script_dir: str = ""
    ) -> str:
        tasks = tasks_per_node * nodes_per_block
        say = 'echo "$@"' if self.debug else ":"
        bind = f"{self.bind_cmd} none" if self.bind_cmd else ""
        return f"""set -e
export CORES=$(getconf _NPROCESSORS_ONLN)
say() {{ {say}; }}
say "Found cores: $CORES"
HOSTFILE="$PWD/hosts_${{JOBNAME:-$$}}.txt"
if [ -n "${{PBS_NODEFILE:-}}" ]; then sort -u "$PBS_NODEFILE" > "$HOSTFILE"; \
else echo localhost > "$HOSTFILE"; fi
{_command_file(command, job_var="JOBNAME", marker="LIVEDAG_MPIEXEC_EOF")}
mpiexec {bind} {self.overrides} -n {tasks} --hostfile "$HOSTFILE" /bin/bash "$CMD_FILE"
say "All worker pools done"
"""

    def __repr__(self) -> str:
        return (f"MpiExecLauncher(debug={self.debug}, bind_cmd={self.bind_cmd!r}, "
                f"overrides={self.overrides!r})")


__all__ = ["MpiExecLauncher", "SrunLauncher"]
