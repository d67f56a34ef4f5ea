"""Command line: ``plasticlab run | sweep | report | transfer | diagnose | data | recipes``.

Parse, dispatch, print; nothing else. Errors a user can cause are one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from plasticlab.registry import Interrupted, UserError

TABLE_KEYS = ("train_acc", "test_acc", "train_loss", "frozen_fraction", "dormant_fraction", "effective_rank",
              "input_sensitivity", "train_bleu2", "test_bleu2")


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def task_table(rows: list[dict]) -> str:
    """A per-task text table of the measures present in ``task_end`` rows."""
    keys = [k for k in TABLE_KEYS if any(r.get(k) is not None for r in rows)]
    lines = ["task  " + "  ".join(f"{k:>17}" for k in keys)]
    for r in rows:
        lines.append(f"{r['task']:>4}  " + "  ".join(f"{fmt(r.get(k)):>17}" for k in keys))
    return "\n".join(lines)


def cmd_run(a: argparse.Namespace) -> int:
    from plasticlab.api import resolve, run
    from plasticlab.store import read_json, read_metrics

    if a.dry_run:  # the schedule needs the data's sizes only: no model, no optimiser, no data read
        from plasticlab.engine.build import schedule_of, sizing_base
        from plasticlab.envs import describe

        cfg = resolve(a.config, a.set)
        print(describe(schedule_of(cfg, sizing_base(cfg))[1]))
        return 0
    out = a.out
    if a.resume is not None:
        if a.out is not None or a.resume is True:
            raise UserError("--resume takes the run directory itself: plasticlab run --resume DIR (without --out)")
        out = a.resume
    bar = lines = None
    progress = None
    if not a.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        def progress(step: int, total: int, task: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="step", dynamic_ncols=True)
            bar.n = step
            bar.set_postfix_str(f"task {task}", refresh=True)
    elif not a.quiet:  # why: off a terminal (batch logs, CI) a \r-refreshed bar is noise: one line per task
        from plasticlab.api import default_out
        from plasticlab.store.loggers import TaskLines

        out = out if out is not None else default_out(resolve(a.config, a.set))
        lines = TaskLines(out)

        def progress(step: int, total: int, task: int) -> None:
            lines.total_steps = total
            lines.poll()

    try:
        run_dir = run(a.config, overrides=a.set, out=out, device=a.device, resume=a.resume is not None,
                      progress=progress)
    finally:
        if bar is not None:
            bar.close()
        if lines is not None:
            lines.poll()
    status = read_json(Path(run_dir) / "provenance.json").get("status")
    if not a.quiet:
        print(task_table(read_metrics(run_dir, "task_end")))
    print(f"run {status}: {run_dir}")
    return 0 if status == "done" else 1


def cmd_data(a: argparse.Namespace) -> int:
    from plasticlab.data import fetch as fetching

    if a.action == "list":
        rows = fetching.list_rows(a.root)
        print(f"{'name':<16} {'status':<9} {'path'}  description")
        for r in rows:
            print(f"{r['name']:<16} {r['status']:<9} {r['path']}  {r.get('description', '')}")
        return 0
    if not a.name:
        raise UserError(f"plasticlab data {a.action} needs a dataset NAME (see `plasticlab data list`)")
    if a.action == "fetch":
        print(f"{a.name}: {fetching.fetch(a.name, a.root, force=a.force)}")
        return 0
    print("\n".join(fetching.verify(a.name, a.root)))  # raises UserError on any problem
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from plasticlab import recipes
    from plasticlab.sweep import read_status_table, run_sweep

    options = dict(executor=a.executor, workers=a.workers, address=a.address, out=a.out,
                   cpus_per_run=a.cpus_per_run, gpus_per_run=a.gpus_per_run, max_retries=a.max_retries,
                   retry_failed=not a.no_retry_failed, progress=not a.quiet, pack=a.pack,
                   slurm={k[6:]: v for k, v in vars(a).items() if k.startswith("slurm_") and v is not None})
    name = recipes.parse_ref(a.sweep)
    if name is not None:
        root = recipes.run(name, profile=a.profile, report=a.report, **options)
    else:
        root = run_sweep(a.sweep, **options)
        if a.report:
            from plasticlab.report import make_report

            make_report(root)
    print(f"sweep: {root}")
    if (root / "report" / "report.html").exists():
        print(f"report: {root / 'report' / 'report.html'}")
    return 0 if all(r["status"] in ("done", "diverged") for r in read_status_table(root)) else 1


def cmd_report(a: argparse.Namespace) -> int:
    from plasticlab.report import make_report

    print(f"report: {make_report(a.dir, a.out)}")
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from plasticlab import recipes

    if a.action == "list":
        for name, desc in recipes.listing():
            print(f"{name:<28} {desc}")
        return 0
    if len(a.names) != 1:
        raise UserError("plasticlab recipes show needs one recipe NAME (see `plasticlab recipes list`)")
    print(recipes.show(a.names[0]), end="")
    return 0


def seed_list(text: str) -> list[int]:
    """``--seeds 100,101,102`` (or ``100-104``) → the list of seeds."""
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(v) for v in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 100,101,102 or 100-104, got {text!r}") from None


def cmd_reproduce(a: argparse.Namespace) -> int:
    from plasticlab import recipes
    from plasticlab.recipes import docs_tables

    if a.docs_only:
        if a.names or a.all:
            raise UserError("recipes reproduce --docs-only runs nothing: give no NAME and no --all")
        changed = docs_tables.refresh_file(Path(a.docs) / "reproduction.md")
        print(f"{Path(a.docs) / 'reproduction.md'}: generated tables {'updated' if changed else 'already current'}")
        return 0
    if a.all and a.names:
        raise UserError("recipes reproduce: give recipe NAMEs or --all, not both")
    names = recipes.names() if a.all else a.names
    for folder in recipes.reproduce(names, profile=a.profile, work=a.work, docs=a.docs, seeds=a.seeds,
                                    executor=a.executor, workers=a.workers, progress=not a.quiet):
        print(f"outputs: {folder}")
    return 0


def cmd_diagnose(a: argparse.Namespace) -> int:
    from plasticlab.diagnostics.report import diagnose, format_report

    doc = diagnose(a.checkpoint, config=a.config, data_root=a.data, task=a.task, overrides=a.set,
                   device=a.device, out=a.out)
    print(format_report(doc))
    return 0


def parser() -> argparse.ArgumentParser:
    from plasticlab import __version__

    p = argparse.ArgumentParser(prog="plasticlab", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"plasticlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="one run (no CONFIG = the built-in default on digits)")
    r.add_argument("config", nargs="?", help="YAML config (default: built-in digits config)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. optim.lr=3e-4")
    r.add_argument("--out", help="run directory (default: runs/<time>-<family>-<env>-<hash>)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"])
    r.add_argument("--resume", nargs="?", const=True, metavar="DIR",
                   help="continue the run in DIR exactly from its latest checkpoint (--set only for "
                        "engine.device, threads, loggers, checkpoint_every)")
    r.add_argument("--dry-run", action="store_true", help="print the phase schedule and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bar or table")
    r.set_defaults(fn=cmd_run)

    w = sub.add_parser("sweep", help="many runs from a grid (base, grid, seeds); re-run to resume")
    w.add_argument("sweep", help="sweep file, or recipe:NAME for a packaged recipe")
    w.add_argument("--executor", choices=["local", "process", "ray", "slurm"], default="local",
                   help="where runs execute: local (this process, one by one), process (a pool of --workers), "
                        "ray, slurm (default: local)")
    w.add_argument("--workers", type=int, help="process pool size / CPUs of a local Ray (default: all cores)")
    w.add_argument("--address", help="Ray cluster to join (ray only): auto or HOST:PORT")
    w.add_argument("--out", help="sweep directory (default: sweeps/<sweep file name>)")
    w.add_argument("--cpus-per-run", type=float, default=1, help="CPUs each Ray task declares, also its torch "
                   "threads (ray only; default 1)")
    w.add_argument("--gpus-per-run", type=float, default=0, help="GPUs each Ray task declares (ray only; default 0)")
    w.add_argument("--max-retries", type=int, default=1, help="Ray retries of a failed run")
    w.add_argument("--no-retry-failed", action="store_true", help="leave runs that failed before")
    w.add_argument("--pack", type=int, default=1, metavar="K",
                   help="train up to K compatible grid points as one batched model (MLP families)")
    for flag, kind, var, what in (("partition", str, "NAME", "Slurm partition"),
                                  ("time", int, "MIN", "minutes per Slurm task (default 60)"),
                                  ("mem", float, "GB", "memory per Slurm task"),
                                  ("cpus", int, "N", "CPUs per Slurm task (default 1)"),
                                  ("gpus", int, "N", "GPUs per Slurm task (default 0)"),
                                  ("array", int, "N", "at most N Slurm tasks at once")):
        w.add_argument(f"--slurm-{flag}", type=kind, metavar=var, help=f"{what}; sweep file: slurm: {{{flag}: {var}}}")
    w.add_argument("--slurm-extra", action="append", metavar="KEY=VALUE", help="another sbatch option (repeatable)")
    w.add_argument("--slurm-local", action="store_true", default=None,
                   help="run the Slurm tasks on this machine (automatic when sbatch is not on PATH)")
    w.add_argument("--profile", default="quick", help="recipe profile: quick (CPU, minutes) or paper")
    w.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    w.add_argument("--quiet", action="store_true",
                   help="no progress display or per-run lines (the first line and the summary remain)")
    w.set_defaults(fn=cmd_sweep)

    rp = sub.add_parser("report", help="tables (mean ± 95%% CI over seeds) and plots for a run or a sweep")
    rp.add_argument("dir", help="a run directory or a sweep directory")
    rp.add_argument("--out", help="report directory (default: DIR/report)")
    rp.set_defaults(fn=cmd_report)

    g = sub.add_parser("diagnose", help="plasticity diagnostics of a saved model (table + JSON)")
    g.add_argument("checkpoint", help="run directory or RUN/checkpoints/latest.pt")
    g.add_argument("--data", metavar="DIR", help="dataset directory (overrides data.root of the run's config)")
    g.add_argument("--config", help="the run's config.yaml (default: RUN/config.yaml)")
    g.add_argument("--task", type=int, help="probe this task's inputs (default: the task the checkpoint was training)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change the run's config, e.g. diagnostics.frozen_tau=0.01")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    g.add_argument("--out", help="JSON path (default: RUN/diagnose.json)")
    g.set_defaults(fn=cmd_diagnose)

    c = sub.add_parser("recipes", help="the packaged experiment recipes: list, show NAME, reproduce NAME ...")
    cs = c.add_subparsers(dest="action", required=True)
    cs.add_parser("list", help="every recipe with its description").set_defaults(fn=cmd_recipes)
    sh = cs.add_parser("show", help="print a recipe's YAML")
    sh.add_argument("names", nargs="?", default=[], type=lambda v: [v], metavar="NAME")
    sh.set_defaults(fn=cmd_recipes)
    rr = cs.add_parser("reproduce", help="run recipes' profile and rewrite DOCS/reproduction/NAME/ and the "
                                         "generated tables of DOCS/reproduction.md")
    rr.add_argument("names", nargs="*", metavar="NAME")
    rr.add_argument("--all", action="store_true", help="every recipe (the quick profiles take about an hour)")
    rr.add_argument("--profile", default="quick", help="recipe profile (default quick; another writes NAME-PROFILE/)")
    rr.add_argument("--work", default="sweeps", metavar="DIR",
                    help="where the sweeps run, DIR/NAME-PROFILE; finished runs are reused (default sweeps)")
    rr.add_argument("--docs", default="docs", metavar="DIR",
                    help="docs folder holding reproduction/ and reproduction.md (default docs)")
    rr.add_argument("--docs-only", action="store_true", help="run nothing; rebuild the generated tables of "
                                                             "DOCS/reproduction.md from DOCS/reproduction/")
    rr.add_argument("--seeds", type=seed_list, metavar="S,S,...",
                    help="a replication: these seeds instead of the profile's, written to NAME/seeds-…/")
    rr.add_argument("--executor", choices=["local", "process", "ray", "slurm"], default="local",
                    help="where runs execute (as for plasticlab sweep; default local)")
    rr.add_argument("--workers", type=int, help="process pool size (default: all cores)")
    rr.add_argument("--quiet", action="store_true", help="no progress display")
    rr.set_defaults(fn=cmd_reproduce)

    from plasticlab.transfer.cli import add_transfer_parser

    add_transfer_parser(sub)

    d = sub.add_parser("data", help="datasets: list what is present, fetch with checksum, verify")
    d.add_argument("action", choices=["list", "fetch", "verify"])
    d.add_argument("name", nargs="?")
    d.add_argument("--root", help="data directory (default: $PLASTICLAB_DATA or ~/.cache/plasticlab)")
    d.add_argument("--force", action="store_true", help="fetch again even if present")
    d.set_defaults(fn=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.fn(args)
        sys.stdout.flush()  # why: a closed pipe shows up here, inside the handler below, not at exit
        return code
    except BrokenPipeError:
        # why: `plasticlab recipes list | head -1` closes our stdout early; end quietly like other tools.
        # stdout goes to devnull so the interpreter's own flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + getattr(signal, "SIGPIPE", 13)
    except UserError as e:
        print(f"plasticlab: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        again = "re-run the same command" if args.command == "sweep" else "plasticlab run --resume DIR"
        print(f"plasticlab: stopped by {signal.Signals(e.signum or signal.SIGINT).name}; checkpoint written; "
              f"to continue, {again}", file=sys.stderr)
        return 128 + (e.signum or signal.SIGINT)
    except KeyboardInterrupt:
        again = "re-run the same command" if args.command == "sweep" else "plasticlab run --resume DIR"
        print(f"plasticlab: interrupted; to continue, {again}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
