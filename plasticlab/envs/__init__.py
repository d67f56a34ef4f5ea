"""Environments: the phase schedule and how each kind builds batches. Importing registers them."""

from plasticlab.envs import kinds  # noqa: F401
from plasticlab.envs.schedule import Phase, Schedule, build_schedule, describe, dropped_levels_note, steps_per_epoch

__all__ = ["Phase", "Schedule", "build_schedule", "describe", "dropped_levels_note", "steps_per_epoch"]
