"""Datasets as device tensors: the raw arrays, class-balanced subsets and normalisation.

A dataset is registered in ``registry.DATASETS`` as a ``DatasetSpec``: the files it needs, where
to fetch them, and a ``read(folder)`` that returns ``ArrayData``. ``load_dataset`` turns that into
``Dataset`` tensors on the training device, once per run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from plasticlab import registry
from plasticlab.registry import UserError


@dataclass
class RemoteFile:
    """One distribution file: its name under the dataset directory, URL and checksum."""

    name: str
    url: str
    sha256: str | None = None
    md5: str | None = None
    extract: bool = False
    """An archive to unpack (path-safely) into the dataset directory after download, then delete."""
    mirrors: tuple[str, ...] = ()
    """Further URLs of the same file, tried in order when ``url`` fails."""


@dataclass
class ArrayData:
    """A dataset as host arrays. Images are (N, C, H, W) uint8 or float; labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int


@dataclass
class DatasetSpec:
    """How to find, fetch and read one dataset."""

    name: str
    read: Callable[[Path], ArrayData]
    """Read the standard files from the dataset's directory (``dataset_dir``)."""
    required: list[str | tuple[str, ...]] = field(default_factory=list)
    """Files (relative to the dataset directory) that must exist for ``read`` to work. A tuple lists
    interchangeable alternatives (any one will do); its first entry is the name shown to users."""
    remote: list[RemoteFile] = field(default_factory=list)
    description: str = ""
    embedded: bool = False
    """Shipped with a dependency; needs no files."""
    folder: str | None = None
    """The dataset directory under the data root; default ``name`` (the EMNIST splits share one)."""
    checksums: dict[str, str] = field(default_factory=dict)
    """Published md5 of files that appear after unpacking an archive, by relative path (for verify)."""
    counts: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    """Examples of each class in the (train, test) split that ``read`` returns, where published:
    a schedule (``run --dry-run``) then needs no files (``declared_labels``)."""


@dataclass
class Labels:
    """The training labels of a dataset, sorted by class, without its images: all that task sizes
    (hence a phase schedule) depend on."""

    y_train: torch.Tensor
    classes: int


@dataclass
class Dataset:
    """Device tensors of one dataset after subsetting and normalisation."""

    x_train: torch.Tensor  # (N, C, H, W) float32
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root``, else ``$PLASTICLAB_DATA``, else ``~/.cache/plasticlab``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("PLASTICLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "plasticlab"


def get_spec(name: str) -> DatasetSpec:
    import plasticlab.data  # noqa: F401  (registers the datasets)

    if name not in registry.DATASETS:
        raise UserError(f"unknown dataset {name!r} (allowed: {', '.join(sorted(registry.DATASETS))})")
    return registry.DATASETS[name]


def dataset_dir(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path:
    """The directory holding ``spec``'s files: ``data_root(root) / (spec.folder or spec.name)``."""
    return data_root(root) / (spec.folder or spec.name)


def find_file(folder: Path, item: str | tuple[str, ...]) -> Path | None:
    """The first existing alternative of a ``DatasetSpec.required`` item under ``folder``, or None."""
    for rel in (item,) if isinstance(item, str) else item:
        if (folder / rel).is_file():
            return folder / rel
    return None


def missing_files(spec: DatasetSpec, folder: Path) -> list[str]:
    """The display names of ``spec.required`` items of which no alternative exists in ``folder``."""
    absent = [item for item in spec.required if find_file(folder, item) is None]
    return [item if isinstance(item, str) else item[0] for item in absent]


def fetch_hint(name: str, root: str | os.PathLike | None = None, force: bool = False) -> str:
    """The command that (re-)downloads dataset ``name`` into the data root ``root`` resolves to."""
    base = data_root(root)
    return (f"plasticlab data fetch {name}" + (" --force" if force else "")
            + ("" if base == data_root(None) else f" --root {base}"))


def missing_error(
    spec: DatasetSpec, folder: Path, missing: list[str], root: str | os.PathLike | None = None
) -> UserError:
    """The one-line error for absent files: which, where, and how to get them."""
    return UserError(
        f"dataset {spec.name!r} not found: missing {', '.join(missing)} in {folder} "
        f"(run `{fetch_hint(spec.name, root)}`, or set data.root / $PLASTICLAB_DATA to where the files are)"
    )


def read_arrays(name: str, root: str | os.PathLike | None = None) -> ArrayData:
    """Read dataset ``name`` from disk (or its embedded source) as host arrays.

    Raises:
        UserError: files known to be bad (recorded corrupt by ``plasticlab data verify``, changed in size
            since verified, or quarantined by a failed fetch; suggests ``fetch NAME --force``), files
            missing (names them, the directory searched and the fetch command), or a file is corrupt.
    """
    from plasticlab.data.fetch import bad_error  # why: fetch imports this module

    spec = get_spec(name)
    folder = dataset_dir(spec, root)
    if err := bad_error(spec, folder, root):
        raise err
    missing = missing_files(spec, folder)
    if missing:
        raise missing_error(spec, folder, missing, root)
    return spec.read(folder)


def class_balanced_indices(
    y: np.ndarray, per_class: int | None, seed: int, key: str = "data.samples_per_class"
) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn from ``seed``, in sorted order.

    ``per_class=None`` keeps everything. A class with fewer examples than asked is an error.
    """
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        refuse_short_class(c, len(idx), per_class, key)
        out.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(out))


def refuse_short_class(c: int, have: int, per_class: int, key: str) -> None:
    """The one-line error for a class with fewer than ``per_class`` examples."""
    if have < per_class:
        raise UserError(f"config: {key}={per_class} but class {c} has only {have} examples "
                        f"(lower it or set it to null)")


def declared_labels(name: str, samples_per_class: int | None = None,
                    test_samples_per_class: int | None = None) -> Labels | None:
    """The training labels ``load_dataset`` would give, from the class counts dataset ``name``
    declares (``DatasetSpec.counts``) without reading a file; None where it declares none.

    Checks the subset sizes as ``load_dataset`` does (the same one-line errors)."""
    counts = get_spec(name).counts
    if counts is None:
        return None
    kept = []
    for split, per_class, key in ((0, samples_per_class, "data.samples_per_class"),
                                  (1, test_samples_per_class, "data.test_samples_per_class")):
        for c, have in enumerate(counts[split]):
            if per_class is not None:
                refuse_short_class(c, have, per_class, key)
        kept.append([have if per_class is None else per_class for have in counts[split]])
    return Labels(torch.repeat_interleave(torch.arange(len(kept[0])), torch.tensor(kept[0])), len(kept[0]))


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    samples_per_class: int | None = None,
    test_samples_per_class: int | None = None,
    normalize: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Dataset:
    """Read, subset (class-balanced, from ``seed``) and normalise a dataset onto ``device``.

    Normalisation standardises each channel with the (subset) training set's mean and std.
    """
    arr = read_arrays(name, root)
    tr = class_balanced_indices(arr.y_train, samples_per_class, seed)
    te = class_balanced_indices(arr.y_test, test_samples_per_class, seed + 1, "data.test_samples_per_class")
    x_tr = torch.as_tensor(np.ascontiguousarray(arr.x_train[tr])).float()
    x_te = torch.as_tensor(np.ascontiguousarray(arr.x_test[te])).float()
    if arr.x_train.dtype == np.uint8:
        x_tr, x_te = x_tr / 255.0, x_te / 255.0
    if normalize:
        dims = [0, 2, 3] if x_tr.ndim == 4 else [0]
        mean = x_tr.mean(dim=dims, keepdim=True)
        std = x_tr.std(dim=dims, keepdim=True).clamp_min(1e-6)
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    y_tr = torch.as_tensor(arr.y_train[tr], dtype=torch.int64)
    y_te = torch.as_tensor(arr.y_test[te], dtype=torch.int64)
    dev = torch.device(device)
    return Dataset(x_tr.to(dev), y_tr.to(dev), x_te.to(dev), y_te.to(dev), arr.classes)
