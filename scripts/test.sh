#!/usr/bin/env bash
# Runs the test suite (set-up included). Extra arguments go to pytest, e.g. -k conv2d.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
exec .venv/bin/python -m pytest "$@"
