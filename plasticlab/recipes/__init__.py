"""Packaged experiment recipes: sweeps that reproduce the papers' claims.

A recipe is a YAML file in this folder::

    description: one line
    paper: the claim's source (paper, section, figure)
    claim: what the paper says
    measure: the measure the claim is about (train_acc, test_acc, test_bleu2, …)
    analysis: optional, e.g. {correlation: {x: input_sensitivity@0, y: test_acc@1}}
    baseline: optional, e.g. {environment.kind: abrupt}: each group is compared with the group
      that has these grid values and its others (default: the sweep's first point)
    profiles:
      quick: {base: …, grid: …, seeds: […]}                  # CPU, minutes
      paper: {base: …, grid: …, seeds: […], cost: "…"}       # the paper's setting, for a GPU

A profile may instead hold ``transfer:`` (a ``plasticlab transfer`` config): it then runs the
pre-train → intervention → fine-tune pipeline (``plasticlab.transfer``) rather than a sweep.

Run one with ``plasticlab sweep recipe:NAME [--profile quick|paper]``; list them with
``plasticlab recipes list`` and print one with ``plasticlab recipes show NAME``. Re-run recipes and
rewrite their committed outputs in ``docs/reproduction/`` with ``plasticlab recipes reproduce NAME``
(``reproduce`` here; ``plasticlab.recipes.outputs``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from plasticlab.registry import UserError

FOLDER = Path(__file__).resolve().parent
RECIPE_KEYS = ("description", "paper", "claim", "measure", "baseline", "analysis", "profiles")
PROFILE_KEYS = ("base", "grid", "seeds", "cost", "transfer")


def names() -> list[str]:
    """Names of the packaged recipes."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def load_recipe(name: str) -> dict:
    """The recipe ``name`` as a mapping, checked for unknown keys."""
    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown recipe {name!r} (see `plasticlab recipes list`: {', '.join(names())})")
    raw = yaml.safe_load(path.read_text())
    for key in raw:
        if key not in RECIPE_KEYS:
            raise UserError(f"recipe {name}: unknown key {key!r} (allowed: {', '.join(RECIPE_KEYS)})")
    baseline = raw.get("baseline")
    if baseline is not None and not (isinstance(baseline, dict) and baseline):
        raise UserError(f"recipe {name}: baseline: expected a mapping of grid key → value such as "
                        f"{{environment.kind: abrupt}}, got {baseline!r}")
    for prof, body in raw.get("profiles", {}).items():
        for key in body:
            if key not in PROFILE_KEYS:
                raise UserError(f"recipe {name}: profiles.{prof}: unknown key {key!r} "
                                f"(allowed: {', '.join(PROFILE_KEYS)})")
    return raw


def sweep_of(name: str, profile: str = "quick") -> dict:
    """The sweep mapping (``base``, ``grid``, ``seeds``) of a recipe's profile, or ``{transfer: …}``."""
    raw = load_recipe(name)
    profiles = raw.get("profiles", {})
    if profile not in profiles:
        raise UserError(f"recipe {name} has no profile {profile!r} (it has: {', '.join(profiles)})")
    body = copy.deepcopy(profiles[profile])
    body.pop("cost", None)
    return body


def parse_ref(text: str) -> str | None:
    """``recipe:NAME`` → NAME; anything else → None."""
    return text.split(":", 1)[1] if isinstance(text, str) and text.startswith("recipe:") else None


def show(name: str) -> str:
    """The recipe file's text."""
    load_recipe(name)
    return (FOLDER / f"{name}.yaml").read_text()


def listing() -> list[tuple[str, str]]:
    """(name, description) of every recipe."""
    return [(n, load_recipe(n).get("description", "")) for n in names()]


def run(name: str, *, profile: str = "quick", out: str | Path | None = None, report: bool = True,
        seeds: list[int] | None = None, **sweep_options) -> Path:
    """Run a recipe's profile as a sweep (resumable) and write its report.

    Args:
        name: recipe name (``plasticlab recipes list``).
        profile: ``quick`` (CPU, minutes) or ``paper``.
        out: sweep directory; default ``sweeps/<name>-<profile>``. A transfer recipe's finished output
            there (status done) is reused.
        seeds: run these seeds instead of the profile's (a replication on seeds the setting was not
            chosen on); recorded in the output's ``recipe.yaml``.
        sweep_options: passed to ``plasticlab.sweep.run_sweep`` (executor, workers, …).
    Returns:
        The sweep directory (its report is in ``report/``).
    """
    from plasticlab.report import make_report
    from plasticlab.sweep import run_sweep

    spec = with_seeds(sweep_of(name, profile), seeds)
    root = Path(out) if out is not None else Path("sweeps") / f"{name}-{profile}"
    meta = yaml.safe_dump({"name": name, "profile": profile, **({"seeds": list(seeds)} if seeds else {}),
                           **{k: v for k, v in load_recipe(name).items() if k != "profiles"}}, sort_keys=False)
    if "transfer" in spec:
        from plasticlab.report.recipe import transfer_analysis
        from plasticlab.transfer import run_transfer

        if not _finished_transfer(root):  # a finished one is reused, as a sweep reuses its finished runs
            run_transfer(spec["transfer"], out=root)
        (root / "recipe.yaml").write_text(meta)
        transfer_analysis(root)  # correlation.txt/.csv/.png when the recipe's analysis asks for one
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.yaml").write_text(meta)
    run_sweep(spec, out=root, **sweep_options)
    if report:
        make_report(root)
    return root


def with_seeds(spec: dict, seeds: list[int] | None) -> dict:
    """A profile's spec (``sweep_of``) with its seeds replaced by ``seeds`` (unchanged when None)."""
    if seeds is None:
        return spec
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise UserError(f"recipe seeds: expected distinct non-negative integers, got {seeds!r}")
    (spec["transfer"] if "transfer" in spec else spec)["seeds"] = list(seeds)
    return spec


def seeds_label(seeds: list[int]) -> str:
    """Folder label of a seed list: ``seeds-100-104`` for a run of consecutive seeds, else ``seeds-1_5_9``."""
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds-{seeds[0]}-{seeds[-1]}"
    return "seeds-" + "_".join(map(str, seeds))


def _finished_transfer(root: Path) -> bool:
    from plasticlab.store import read_json

    try:
        return read_json(root / "provenance.json").get("status") == "done"
    except (OSError, ValueError):
        return False


from plasticlab.recipes.outputs import reproduce as reproduce  # noqa: E402  (re-exported)
