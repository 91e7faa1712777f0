#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the suite needs, then runs all of it.
# Safe to run again: each step is quick when its part is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# Chromium (apt) and JupyterLab + Playwright (pip) for the widget's browser tests.
bash scripts/browser-deps.sh

python3 -m pytest "$@"
