"""Launchers that start the worker-pool command across the nodes of a batch job.

    provider.script_for(command) ──launcher(command, tasks_per_node, nodes_per_block)──>
        write the command to cmd_<job>.sh in the job's working directory (the run dir)
        ──srun / mpiexec──> one copy per task slot, on every node of the allocation

Names, arguments and defaults follow Parsl's `parsl.launchers` (SrunLauncher,
MpiExecLauncher), so a Parsl config keeps working. The single-node launchers live in
`livedag.launchers`.

`srun --export=ALL`: a job submitted with `--export=NONE` would otherwise give every task
an empty environment (no PATH, no LIVEDAG_PYTHON), and the worker pool could not start.
"""

from __future__ import annotations

from livedag.launchers import Launcher


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
