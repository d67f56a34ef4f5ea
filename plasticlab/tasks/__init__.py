"""Task families: task t is a pure function of (seed, t). Importing registers every module in the package."""

from plasticlab.registry import import_all
from plasticlab.tasks.base import ClassificationFamily, Task, classification_loss

import_all(__name__, __path__)

__all__ = ["ClassificationFamily", "Task", "classification_loss"]
