#!/usr/bin/env bash
# Create .venv once and install plasticlab into it (editable, with test extras).
# torch==2.13.0 is installed first: on a CPU machine that is the CPU build, and the package's
# torch range is then already satisfied, so no CUDA wheels are pulled. An existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv --system-site-packages .venv
fi
. .venv/bin/activate
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
