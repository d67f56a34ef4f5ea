"""Datasets: raw files → device tensors. Importing this module registers every dataset."""

from plasticlab.data import digits  # noqa: F401
from plasticlab.data.base import Dataset, DatasetSpec, data_root, load_dataset, read_arrays

__all__ = ["Dataset", "DatasetSpec", "data_root", "load_dataset", "read_arrays"]
