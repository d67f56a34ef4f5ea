"""Run store: run directory layout, metrics writer/reader, checkpoints. No nn code."""

from plasticlab.store.rundir import (
    CHECKPOINT,
    MetricsWriter,
    atomic_write,
    load_checkpoint,
    provenance,
    read_json,
    read_metrics,
    save_checkpoint,
    update_provenance,
    write_json,
)

__all__ = ["CHECKPOINT", "MetricsWriter", "atomic_write", "load_checkpoint", "provenance", "read_json",
           "read_metrics", "save_checkpoint", "update_provenance", "write_json"]
