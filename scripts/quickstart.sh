#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the main job: the quickstart recipe (abrupt vs gradual vs a
# mitigation, 3 seeds, on the embedded digits data) and its report. Re-running resumes/skips.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
workers=$(python -c "import os; print(max(1, min(4, os.cpu_count() or 1)))")
plasticlab sweep recipe:quickstart --executor process --workers "$workers" --report --out sweeps/quickstart "$@"
