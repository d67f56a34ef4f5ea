"""``plasticlab transfer CONFIG``: parse, run, print the tables. Wired into ``plasticlab/cli.py``."""

from __future__ import annotations

import argparse
import sys


def cmd_transfer(a: argparse.Namespace) -> int:
    from plasticlab.transfer import read_results, run_transfer
    from plasticlab.transfer.table import format_tables

    log = None if a.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = run_transfer(a.config, overrides=a.set, out=a.out, device=a.device, log=log)
    print(format_tables(read_results(out)))
    print(f"transfer done: {out}")
    return 0


def add_transfer_parser(sub) -> None:
    """Add the ``transfer`` sub-command to the CLI's sub-parsers."""
    t = sub.add_parser("transfer", help="pre-train → intervention → fine-tune on N target images per class")
    t.add_argument("config", help="transfer YAML (source, target, interventions, seeds; see docs/transfer.md)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. target.steps=100 or source.optim.weight_decay=1e-3")
    t.add_argument("--out", help="output directory (default: runs/<time>-transfer-<hash>)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
    t.add_argument("--quiet", action="store_true", help="no progress lines")
    t.set_defaults(fn=cmd_transfer)
