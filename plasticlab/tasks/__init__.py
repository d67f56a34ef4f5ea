"""Task families: task t is a pure function of (seed, t). Importing registers them all."""

from plasticlab.tasks import blurred, language, permuted, random_labels  # noqa: F401
from plasticlab.tasks.base import ClassificationFamily, Task, classification_loss

__all__ = ["ClassificationFamily", "Task", "classification_loss"]
