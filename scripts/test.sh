#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, and run the test suite: ./scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
ruff check plasticlab tests benchmarks examples
python -m pytest -q "$@"
