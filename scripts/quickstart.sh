#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: the built-in default on the embedded digits data.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
plasticlab run "$@"
