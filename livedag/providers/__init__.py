"""Providers: where blocks of worker pools run (Parsl: parsl.providers).

    LocalProvider        blocks as local processes
    SlurmProvider        sbatch / squeue / scancel (sacct for final states)
    GridEngineProvider   qsub / qstat / qdel / qacct
    PBSProProvider, LSFProvider, CondorProvider   scripts and command parsing

Each is a small module over the shared batch logic in `batch.py`; the contract every
provider keeps is in `base.py`.
"""

from livedag.providers.base import ExecutionProvider, JobState, JobStatus
from livedag.providers.condor import CondorProvider
from livedag.providers.local import LocalProvider
from livedag.providers.lsf import LSFProvider
from livedag.providers.pbs import PBSProProvider
from livedag.providers.sge import GridEngineProvider
from livedag.providers.slurm import SlurmProvider

__all__ = [
    "CondorProvider",
    "ExecutionProvider",
    "GridEngineProvider",
    "JobState",
    "JobStatus",
    "LSFProvider",
    "LocalProvider",
    "PBSProProvider",
    "SlurmProvider",
]
