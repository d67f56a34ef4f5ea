"""plasticlab: run, diagnose and mitigate loss of plasticity in sequential learning.

Python API (mirrors the CLI)::

    import plasticlab
    run_dir = plasticlab.run("configs/digits.yaml", overrides=["seed=1"])
    plasticlab.read_metrics(run_dir, "task_end")
    plasticlab.run(config, model=make_model, tasks=MyStream)   # your own model and tasks (docs/custom.md)
"""

__version__ = "0.1.0"
__all__ = ["__version__", "load_config", "read_metrics", "run"]


def __getattr__(name: str):
    """The API, imported on first use. # why: ``import plasticlab`` (and the CLI's ``--help``) stays
    free of torch; the registries fill when a config is first validated."""
    if name == "run":
        from plasticlab.api import run

        return run
    if name == "load_config":
        from plasticlab.config import load_config

        return load_config
    if name == "read_metrics":
        from plasticlab.store import read_metrics

        return read_metrics
    raise AttributeError(f"module 'plasticlab' has no attribute {name!r}")
