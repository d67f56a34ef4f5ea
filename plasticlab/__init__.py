"""plasticlab: run, diagnose and mitigate loss of plasticity in sequential learning.

Python API (mirrors the CLI)::

    import plasticlab
    run_dir = plasticlab.run("configs/digits.yaml", overrides=["seed=1"])
    plasticlab.read_metrics(run_dir, "task_end")
"""

__version__ = "0.1.0"

# why: importing the component packages fills the registries that config validation reads.
from plasticlab import data, envs, methods, models, tasks  # noqa: E402, F401
from plasticlab.api import run  # noqa: E402
from plasticlab.config import load_config  # noqa: E402
from plasticlab.store import read_metrics  # noqa: E402

__all__ = ["__version__", "load_config", "read_metrics", "run"]
