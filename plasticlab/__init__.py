"""plasticlab: run, diagnose and mitigate loss of plasticity in sequential learning.

Python API (mirrors the CLI)::

    import plasticlab
    run_dir = plasticlab.run("configs/digits.yaml", overrides=["seed=1"])
    plasticlab.read_metrics(run_dir, "task_end")
"""

__version__ = "0.1.0"

from plasticlab.api import run  # noqa: E402
from plasticlab.config import load_config  # noqa: E402
from plasticlab.store import read_metrics  # noqa: E402

__all__ = ["__version__", "load_config", "read_metrics", "run"]
