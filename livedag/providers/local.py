"""LocalProvider: each block is a bash script run as a local process group.

    submit(script) ──> <script_dir>/<job>.sh ──bash (own session)──> worker pool(s)
                                              ├─ stdout > <job>.sh.out
                                              └─ stderr > <job>.sh.err
    status(ids) ──> Popen.poll() per job (one call)     cancel(ids) ──> TERM, then KILL, the group

The job id is the pid of the bash process; it leads its own process group, so cancelling
a block stops the pool and every worker it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

from livedag.errors import ConfigurationError
from livedag.launchers import Launcher, SingleNodeLauncher
from livedag.providers.base import ExecutionProvider, JobState, JobStatus

KILL_GRACE = 2.0  # seconds between TERM and KILL when cancelling a block


class LocalProvider(ExecutionProvider):
    """Blocks as processes on this machine (Parsl: parsl.providers.LocalProvider)."""

    label = "local"
    is_local = True

    def __init__(
        self,
        nodes_per_block: int = 1,
        launcher: Launcher | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        worker_init: str = "",
        cmd_timeout: int = 30,
        parallelism: float = 1,
    ) -> None:
        if not 0 <= min_blocks <= max_blocks:
            raise ConfigurationError(
                f"LocalProvider: need 0 <= min_blocks <= max_blocks, got {min_blocks}, {max_blocks}"
            )
        if not 0 <= parallelism <= 1:
            raise ConfigurationError(
                f"LocalProvider: parallelism must be in [0, 1], got {parallelism}"
            )
        self.nodes_per_block = nodes_per_block
        self.launcher = launcher if launcher is not None else SingleNodeLauncher(debug=True)
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.worker_init = worker_init
        self.cmd_timeout = cmd_timeout
        self.parallelism = parallelism
        self._jobs: dict[str, subprocess.Popen[bytes]] = {}
        self._scripts: dict[str, str] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, script: str, job_name: str) -> str:
        os.makedirs(self.script_dir, exist_ok=True)
        path = os.path.join(os.path.abspath(self.script_dir), f"{job_name}.sh")
        with open(path, "w") as f:
            f.write("#!/bin/bash\n" + script)
        os.chmod(path, 0o700)
        with open(path + ".out", "wb") as out, open(path + ".err", "wb") as err:
            proc = subprocess.Popen(
                ["/bin/bash", path], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,
            )
        job_id = str(proc.pid)
        with self._lock:
            self._jobs[job_id] = proc
            self._scripts[job_id] = path
        return job_id

    def status(self, job_ids: Sequence[str]) -> list[JobStatus]:
        return [self._status(job_id) for job_id in job_ids]

    def _status(self, job_id: str) -> JobStatus:
        proc = self._jobs.get(job_id)
        if proc is None:
            return JobStatus(JobState.UNKNOWN, message=f"no local job {job_id}")
        path = self._scripts[job_id]
        out, err = path + ".out", path + ".err"
        code = proc.poll()
        if code is None:
            return JobStatus(JobState.RUNNING, stdout_path=out, stderr_path=err)
        if job_id in self._cancelled:
            state = JobState.CANCELLED
        else:
            state = JobState.COMPLETED if code == 0 else JobState.FAILED
        message = None
        if state is JobState.FAILED:
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            message = f"block script {path} {how}; see {err}"
        return JobStatus(state, message, code, out, err)

    def cancel(self, job_ids: Sequence[str]) -> list[bool]:
        procs = []
        for job_id in job_ids:
            proc = self._jobs.get(job_id)
            if proc is None:
                continue
            self._cancelled.add(job_id)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                procs.append(proc)
        deadline = time.monotonic() + KILL_GRACE
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            # The script may be gone while a pool it started lingers: the group goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
        return [job_id in self._jobs for job_id in job_ids]
