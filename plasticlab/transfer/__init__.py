"""Transfer: pre-train on a source, intervene (none, reset-frozen, …), fine-tune on N target images per class.

Usage::

    from plasticlab.transfer import run_transfer, read_results
    out = run_transfer("configs/transfer/digits_quick.yaml", out="runs/tq")
    rows = read_results(out)   # one dict per (seed, intervention, N)
"""

__all__ = ["TransferConfig", "load_transfer_config", "read_results", "run_transfer"]


def __getattr__(name: str):
    """Imported on first use (# why: ``plasticlab --help`` wires the transfer sub-command without torch)."""
    if name in ("TransferConfig", "load_transfer_config"):
        from plasticlab.transfer import config

        return getattr(config, name)
    if name in ("read_results", "run_transfer"):
        from plasticlab.transfer import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'plasticlab.transfer' has no attribute {name!r}")
