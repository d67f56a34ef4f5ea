"""Datasets: raw files → device tensors. Importing this module registers every dataset.

Download tooling (``plasticlab data fetch | verify | list``) is in ``plasticlab.data.fetch``.
"""

from plasticlab.data import cifar, digits, emnist, fetch, imagenet32, mnist, mnist1d, tiny_imagenet  # noqa: F401
from plasticlab.data.base import Dataset, DatasetSpec, data_root, load_dataset, read_arrays

__all__ = ["Dataset", "DatasetSpec", "data_root", "load_dataset", "read_arrays"]
