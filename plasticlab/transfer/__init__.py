"""Transfer: pre-train on a source, intervene (none, reset-frozen, …), fine-tune on N target images per class.

Usage::

    from plasticlab.transfer import run_transfer, read_results
    out = run_transfer("configs/transfer/digits_quick.yaml", out="runs/tq")
    rows = read_results(out)   # one dict per (seed, intervention, N)
"""

from plasticlab.transfer.config import TransferConfig, load_transfer_config
from plasticlab.transfer.pipeline import read_results, run_transfer

__all__ = ["TransferConfig", "load_transfer_config", "read_results", "run_transfer"]
