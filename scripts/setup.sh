#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install segmap into it, with the test tools when asked.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh test     runtime + test, lint and type-check tools
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "segmap needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
# The OHIF viewer segmap serves at /ohif/ (npm @ohif/app, pinned and checked; see the script).
# SEGMAP_SKIP_OHIF=1 skips it (segmap then serves a page saying the viewer is not installed).
if [ "${SEGMAP_SKIP_OHIF:-}" != "1" ]; then
  .venv/bin/python scripts/install-ohif.py
fi
