"""Parsl's HighThroughputExecutor parameters, as livedag takes them: which ones have no
effect here (and why), how the others are checked, and where each one goes.

    HighThroughputExecutor(**Parsl's parameters) ──default_provider, check──> attributes
        ──interchange_config──> InterchangeConfig ──stdin pipe──> interchange
              label, address (bind), worker_port(_range), heartbeats, encrypted, worker_debug
        ──pool_arguments──> each block's `python -m livedag.executors.htex.pool ...`
              address, heartbeats, worker_logdir_root, max_workers_per_node,
              cores_per_worker, mem_per_worker, prefetch_capacity, cpu_affinity,
              available_accelerators, encrypted, worker_debug
    IGNORED_PARAMETERS: accepted so that a Parsl config works unchanged; no effect here.

The kernel's own facts of a run (the interchange's port, the secret's file, the
certificates' directory) are passed in; everything else is read from the executor.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from livedag.errors import ConfigurationError
from livedag.executors.htex.protocol import InterchangeConfig
from livedag.providers.base import ExecutionProvider

if TYPE_CHECKING:
    from livedag.executors.htex.executor import HighThroughputExecutor

# Parsl parameters accepted so a Parsl config works unchanged, with no effect here.
IGNORED_PARAMETERS = {
    "launch_cmd": "pools are always started as `python -m livedag.executors.htex.pool`",
    "interchange_launch_cmd": "the interchange is always `python -m ...htex.interchange`",
    "interchange_port_range": "the kernel talks to the interchange over pipes, not ports",
    "loopback_address": "the kernel talks to the interchange over pipes",
    "storage_access": "data staging is not implemented yet",
    "working_dir": "workers run in the kernel's working directory",
    "drain_period": "not implemented yet",
    "poll_period": "the loops wake on events, not on a poll period",
    "address_probe_timeout": "pools connect to the first address given",
    "manager_selector": "tasks go to the pool with the most free slots",
    "block_error_handler": "block failures are reported as BlockChanged events",
    "remote_monitoring_radio": "monitoring reads the event stream instead",
}


def default_provider(provider: ExecutionProvider | None) -> ExecutionProvider:
    """Parsl's default: blocks are processes on this machine."""
    if provider is None:
        from livedag.providers.local import LocalProvider

        provider = LocalProvider()
    return provider


def check(label: str, *, cores_per_worker: float, heartbeat_period: int,
          heartbeat_threshold: int) -> None:
    """Refuse values no pool could run with (ConfigurationError)."""
    if cores_per_worker <= 0:
        raise ConfigurationError(
            f"{label}: cores_per_worker must be > 0, got {cores_per_worker}"
        )
    if heartbeat_period <= 0 or heartbeat_threshold <= 0:
        raise ConfigurationError(
            f"{label}: heartbeat_period and heartbeat_threshold must be > 0"
        )


def accelerator_names(available_accelerators: int | Sequence[str]) -> list[str]:
    """Parsl's `available_accelerators`: a count, or the names (device ids) themselves."""
    if isinstance(available_accelerators, int):
        available_accelerators = [str(i) for i in range(available_accelerators)]
    return list(available_accelerators)


def interchange_config(ex: HighThroughputExecutor, *, secret: str,
                       cert_dir: str | None) -> InterchangeConfig:
    """What the interchange is told when it starts: where pools connect, how it hears them."""
    bind = "127.0.0.1" if ex.loopback_only else (ex.address or "*")
    if ex.worker_port:
        ports = [ex.worker_port, ex.worker_port]
    else:
        ports = list(ex.worker_port_range or (54000, 55000))
    return InterchangeConfig(
        label=ex.label, secret=secret, bind_address=bind, port_range=ports,
        heartbeat_period=float(ex.heartbeat_period),
        heartbeat_threshold=float(ex.heartbeat_threshold), cert_dir=cert_dir,
        log_path=ex.interchange_log, debug=ex.worker_debug, local_socket=ex.loopback_only,
    )


def pool_arguments(ex: HighThroughputExecutor, block_id: str, *, port: int,
                   secret_file: str, cert_dir: str | None, local_socket: str = "") -> list[str]:
    """The command line of the pool that a block starts on each of its nodes."""
    address = "127.0.0.1" if ex.loopback_only else (ex.address or socket.gethostname())
    parts = [
        sys.executable, "-m", "livedag.executors.htex.pool",
        "--addresses", address, "--port", str(port), "--block-id", block_id,
        "--logdir", ex.worker_logdir, "--secret-file", secret_file,
        "--hb-period", str(ex.heartbeat_period),
        "--hb-threshold", str(ex.heartbeat_threshold),
        "--max-workers", str(ex.max_workers_per_node),
        "--cores-per-worker", str(ex.cores_per_worker),
        "--mem-per-worker", str(ex.mem_per_worker),
        "--prefetch", str(ex.prefetch_capacity), "--cpu-affinity", ex.cpu_affinity,
    ]
    if cert_dir:
        parts += ["--cert-dir", cert_dir]
    if local_socket:  # the pool tries it first; zmq if it cannot reach it (streams.py)
        parts += ["--local-socket", local_socket]
    if ex.available_accelerators:
        parts += ["--accelerators", *ex.available_accelerators]
    if ex.worker_debug:
        parts.append("--debug")
    return parts
