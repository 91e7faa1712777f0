#!/usr/bin/env bash
# What the widget and browser tests need (tests/jupyter, tests/browser), installed only
# when missing, so a second run costs a second. Chromium comes from apt: Playwright's own
# browser download (`playwright install`) cannot work here and is never run.
set -euo pipefail

PY="${PYTHON:-python3}"

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "browser-deps: chromium is missing and this user cannot apt-get install it" >&2
  fi
fi

missing=()
for mod in jupyterlab ipywidgets anywidget ipykernel playwright nbformat matplotlib networkx; do
  "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" \
    || missing+=("$mod")
done
if [ ${#missing[@]} -gt 0 ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check \
    "jupyterlab>=4.4" "ipywidgets>=8" "anywidget>=0.9" "ipykernel>=7" playwright nbformat \
    "matplotlib>=3.7" "networkx>=3"
fi
