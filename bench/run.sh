#!/usr/bin/env bash
# Run the livedag-vs-Parsl engine benchmarks from the repository root.
# Parsl is installed here, for the benchmark only: it is not a dependency of livedag.
# All arguments go to bench/engine.py, e.g.:  bench/run.sh --quick --engines parsl
set -euo pipefail

PARSL_VERSION="2026.10.26"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! python3 -c "import parsl" >/dev/null 2>&1; then
    echo "parsl not importable: installing parsl==${PARSL_VERSION} for the benchmark" >&2
    python3 -m pip install --quiet "parsl==${PARSL_VERSION}"
fi

exec python3 -m bench.engine "$@"
