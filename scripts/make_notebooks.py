"""Write notebooks/*.ipynb from the cells below: `python scripts/make_notebooks.py`.

The notebooks are the user-facing examples; the test suite runs each one with `livedag run`
(tests/headless/test_notebooks.py) and checks that this script and the files agree, so
edit the cells here. Cell ids are fixed, so regenerating changes only what was edited.
A cell tagged `raises-exception` is meant to fail: Jupyter's "Run All" and `livedag run`
go on past it, and the error is what the notebook wants to show.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def md(text: str) -> dict[str, object]:
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def code(text: str, *tags: str) -> dict[str, object]:
    meta: dict[str, object] = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta,
            "outputs": [], "source": text.strip("\n")}


QUICKSTART = [
    md("""
# livedag quick start

Apps return futures at once; passing a future to another app adds an edge to a DAG that
grows while you work. `%load_ext livedag` loads a local thread pool (unless you
loaded a Config yourself) and shows the **live DAG**: it updates while tasks run, and a
click on a task shows its arguments, output and errors.
"""),
    code("""
from pathlib import Path

import livedag
from livedag import bash_app, python_app

%load_ext livedag
"""),
    md("## Python apps and futures"),
    code("""
@python_app
def square(x):
    print(f"squaring {x}")
    return x * x


@python_app
def total(*numbers):
    return sum(numbers)


squares = [square(i) for i in range(5)]   # five tasks, running now
result = total(*squares)                   # waits for all five: edges in the DAG
print("sum of squares:", result.result())
"""),
    md("Every future remembers what its task printed and how it ran:"),
    code("""
f = squares[3]
print(repr(f))
print("task", f.tid, "printed:", repr(f.captured_stdout))
print("status:", f.task_status(), "| tries:", len(f.tries))
"""),
    md("## Bash apps\n\nA bash app returns a command line; its exit code decides success."),
    code("""
@bash_app
def word_count(text, stdout=livedag.AUTO_LOGNAME):
    return f"echo '{text}' | wc -w"


wc = word_count("the quick brown fox")
wc.result()                       # 0: the exit code
print(Path(wc.stdout).read_text().strip(), "words (read from", Path(wc.stdout).name + ")")
"""),
    md("## The DAG, as text\n\n`%dag` shows the widget again; `%dag summary` prints it:"),
    code("%dag summary"),
]

ZOO = [
    md("""
# Debugging failures: an error zoo

Each cell below makes something go wrong on purpose and shows what livedag tells you.
Cells that fail are tagged `raises-exception`, so "Run All" (and `livedag run`) go on
past them. The first part runs on threads; the worker failures use the ZMQ executor
(`HighThroughputExecutor`), whose workers are separate processes.
"""),
    code("""
import importlib
import os
import sys
import tempfile
import threading

import livedag
from livedag import bash_app, python_app
from livedag.executors import HighThroughputExecutor, ThreadPoolExecutor
from livedag.providers import LocalProvider

livedag.load(livedag.Config(executors=[
    ThreadPoolExecutor(label="threads", max_threads=4),
    HighThroughputExecutor(label="workers", max_workers_per_node=2,
                           provider=LocalProvider(init_blocks=1)),
]))
%load_ext livedag
"""),
    md("## 1. An exception in an app\n\nThe original exception type, the app's own traceback, "
       "which task and try, and what the task wrote to stderr:"),
    code("""
@python_app(executors=["threads"])
def parse(text):
    print(f"parsing {text!r}", file=sys.stderr)
    return int(text)


parse("seventeen").result()
""", "raises-exception"),
    md("## 2. A dependency failure\n\n`total` never runs: its input failed. The error names "
       "the **root cause** task, however deep the chain:"),
    code("""
@python_app(executors=["threads"])
def total(*numbers):
    return sum(numbers)


bad_sum = total(parse("1"), parse("two"), parse("3"))
bad_sum.result()
""", "raises-exception"),
    md("The same facts, as data:"),
    code("""
err = bad_sum.exception()
print(type(err).__name__, "->", [r.describe() for r in err.root_causes])
print("the original exception is the cause:", repr(err.__cause__))
"""),
    md("## 3. A bash command that fails\n\nThe exit code and the last lines of stderr:"),
    code("""
@bash_app(executors=["threads"])
def copy(src, dst):
    return f"cp {src} {dst}"


copy("/no/such/file", "/tmp/x").result()
""", "raises-exception"),
    md("""
## 4. An import error in a worker

The kernel can import `zoo_helpers` (its folder is on the kernel's `sys.path`), the
workers cannot: unpickling the task there fails, and the error says which Python and
which `sys.path` the worker used.
"""),
    code("""
helpers = tempfile.mkdtemp()
with open(os.path.join(helpers, "zoo_helpers.py"), "w") as f:
    f.write("def double(x):\\n    return 2 * x\\n")
sys.path.insert(0, helpers)                     # the kernel's sys.path only
zoo_helpers = importlib.import_module("zoo_helpers")


@python_app(executors=["workers"])
def apply(fn, x):
    return fn(x)


print("in the kernel:", zoo_helpers.double(21))
apply(zoo_helpers.double, 21).result()
""", "raises-exception"),
    md("## 5. An argument that cannot be pickled\n\nWorkers get arguments by value; a lock "
       "cannot travel. The error names the argument and suggests a way out:"),
    code("""
@python_app(executors=["workers"])
def guarded(lock):
    return "unreachable"


guarded(threading.Lock()).result()
""", "raises-exception"),
    md("## 6. A worker that crashes\n\nThe process dies mid-task (here `os._exit`, as a "
       "segfault or the out-of-memory killer would). Only that task fails, with the exit "
       "code, the host and pid, and what it printed before dying:"),
    code("""
@python_app(executors=["workers"])
def crash():
    print("about to crash", flush=True)
    os._exit(3)


crashed = crash()
crashed.result()
""", "raises-exception"),
    code("""
err = crashed.exception()
print(type(err).__name__, "| exit code:", err.exitcode, "| pid:", err.pid)
print("what it printed:", repr(crashed.captured_stdout))
"""),
    md("## The whole zoo in the DAG\n\nFailed tasks are red, blocked ones orange:"),
    code("%dag summary"),
    code("""
livedag.dfk().cleanup()
livedag.clear()
"""),
]

FAN = [
    md("""
# Fan out, fan in, and results that are reused

`cache=True` memoizes an app on its function's source and its arguments: the same call
again (in this kernel, or after a restart, through the checkpoint) reuses the result
instead of running. Edit the function and the cache no longer matches.
"""),
    code("""
import time

import livedag
from livedag import python_app

livedag.load(livedag.Config(checkpoint_mode="task_exit"))
%load_ext livedag
"""),
    code("n_runs = 8   # `livedag run --parameter n_runs=3` changes it", "parameters"),
    code("""
@python_app(cache=True)
def simulate(seed):
    import random
    import time
    time.sleep(0.3)                      # pretend this is expensive
    return random.Random(seed).random()


@python_app
def mean(*values):
    return sum(values) / len(values)


t0 = time.time()
runs = [simulate(seed) for seed in range(n_runs)]     # fan out
average = mean(*runs)                            # fan in
print(f"mean of {n_runs} runs: {average.result():.4f} in {time.time() - t0:.2f} s")
print("states:", sorted({f.task_status() for f in runs}))
"""),
    md("The same calls again: every `simulate` is found in the cache (`memo_done`), nothing "
       "runs. (Run the notebook a second time and even the cell above is served from the "
       "checkpoint in `runinfo/`.)"),
    code("""
t0 = time.time()
again = [simulate(seed) for seed in range(n_runs)]
print(f"mean again: {mean(*again).result():.4f} in {time.time() - t0:.2f} s")
print("states:", sorted({f.task_status() for f in again}))
assert all(f.task_status() == "memo_done" for f in again)
"""),
    md("A restart: clean up, load a new kernel. The checkpoint written at each task's exit "
       "brings the results back:"),
    code("""
livedag.dfk().cleanup()
livedag.clear()
livedag.load(livedag.Config(checkpoint_mode="task_exit"))
after_restart = [simulate(seed) for seed in range(n_runs)]
print("mean after the restart:", f"{mean(*after_restart).result():.4f}")
print("states:", sorted({f.task_status() for f in after_restart}))
assert all(f.task_status() == "memo_done" for f in after_restart)
"""),
    code("""
livedag.dfk().cleanup()
livedag.clear()
"""),
]

FROM_PARSL = [
    md("""
# From Parsl

A Parsl script, unchanged except for its imports:

```diff
-import parsl
-from parsl import python_app, bash_app
-from parsl.config import Config
-from parsl.executors import ThreadPoolExecutor
+import livedag as parsl
+from livedag import python_app, bash_app
+from livedag.config import Config
+from livedag.executors import ThreadPoolExecutor
```
"""),
    code("""
import livedag as parsl
from livedag import bash_app, python_app
from livedag.config import Config
from livedag.data_provider.files import File
from livedag.executors import ThreadPoolExecutor

config = Config(executors=[ThreadPoolExecutor(max_threads=4, label="local_threads")])
parsl.load(config)
"""),
    code("""
import os
import tempfile


@python_app
def hello(name):
    return f"Hello, {name}!"


@bash_app
def write(message, outputs=()):
    return f"echo '{message}' > {outputs[0]}"


@python_app
def shout(inputs=()):
    with open(inputs[0]) as f:
        return f.read().strip().upper()


path = os.path.join(tempfile.mkdtemp(), "greeting.txt")
greeting = hello("Parsl user")
written = write(greeting, outputs=[File(path)])
loud = shout(inputs=[written.outputs[0]])
print(loud.result())
"""),
    code("""
from livedag.app.errors import BashExitFailure


@bash_app
def fails():
    return "exit 3"


try:
    fails().result()
except BashExitFailure as e:          # Parsl's exception class, at Parsl's import path
    print("caught:", e.exitcode, "-", e)
"""),
    code("""
parsl.dfk().cleanup()
parsl.clear()
"""),
]


CLUSTER = [
    md("""
# On a cluster: worker pools as batch jobs

The same apps, run by `HighThroughputExecutor` in worker pools that Slurm starts as batch
jobs ("blocks"). The config reads its site settings from the environment, like a Parsl
site config; set them before starting Jupyter (or `livedag run`):

| variable | meaning | default |
|---|---|---|
| `LIVEDAG_PARTITION` | the Slurm partition | `debug` |
| `LIVEDAG_ACCOUNT` | the account to charge | none |
| `LIVEDAG_WORKER_INIT` | shell lines the job runs first (`source ~/venv/bin/activate`) | none |

Workers run the Python of this kernel (`sys.executable`) unless `worker_init` chooses
another; the kernel's machine must be reachable from the compute nodes at
`address_by_hostname()`. When a block's job ends under a task (`scancel`, the walltime),
the task's error says which job, why, and where its output is.
"""),
    code("""
import os

import livedag
from livedag import Config, HighThroughputExecutor, bash_app, python_app
from livedag.addresses import address_by_hostname
from livedag.launchers import SrunLauncher
from livedag.providers import SlurmProvider

config = Config(
    executors=[
        HighThroughputExecutor(
            label="cluster",
            address=address_by_hostname(),
            max_workers_per_node=2,
            provider=SlurmProvider(
                partition=os.environ.get("LIVEDAG_PARTITION", "debug"),
                account=os.environ.get("LIVEDAG_ACCOUNT"),
                nodes_per_block=1,
                init_blocks=1,
                max_blocks=2,
                walltime="00:10:00",
                worker_init=os.environ.get("LIVEDAG_WORKER_INIT", ""),
                launcher=SrunLauncher(),
            ),
        )
    ],
)
livedag.load(config)
%load_ext livedag
"""),
    md("## A DAG whose tasks run in the block's job"),
    code("""
@python_app
def where(x):
    import os
    import socket
    print(f"task {x} on {socket.gethostname()}")
    return x * x, os.environ.get("SLURM_JOB_ID")


@python_app
def total(*pairs):
    return sum(value for value, _ in pairs)


@bash_app
def report(n, stdout=livedag.AUTO_LOGNAME):
    return f"echo sum of squares: {n} from Slurm job $SLURM_JOB_ID"


pairs = [where(i) for i in range(4)]
result = total(*pairs)
done = report(result)
print("sum of squares:", result.result())
print("Slurm jobs that ran them:", sorted({job for _, job in (p.result() for p in pairs)}))
done.result()
print(open(done.stdout).read().strip())
"""),
    md("## The blocks"),
    code("""
executor = livedag.dfk().executors["cluster"]
for block, job in executor.blocks.jobs.items():
    print(f"block {block}: Slurm job {job}")
"""),
    code("""
livedag.dfk().cleanup()   # cancels the blocks' jobs
livedag.clear()
"""),
]


def notebook(cells: list[dict[str, object]], slug: str) -> dict[str, object]:
    for n, cell in enumerate(cells, 1):
        cell["id"] = f"{slug}-{n:02d}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                           "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


ALL = {
    "01-quickstart.ipynb": notebook(QUICKSTART, "quickstart"),
    "02-debugging-failures.ipynb": notebook(ZOO, "zoo"),
    "03-fan-out-fan-in.ipynb": notebook(FAN, "fan"),
    "04-from-parsl.ipynb": notebook(FROM_PARSL, "parsl"),
    "05-cluster.ipynb": notebook(CLUSTER, "cluster"),
}


def render(nb: dict[str, object]) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, nb in ALL.items():
        path = NOTEBOOKS / name
        text = render(nb)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            NOTEBOOKS.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python scripts/make_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
