"""Sweeps: a grid of configs × seeds, run by an executor (local, process pool, Ray or Slurm), resumable."""

from plasticlab.sweep.driver import read_status_table, run_sweep
from plasticlab.sweep.executors import EXECUTORS, make_executor
from plasticlab.sweep.spec import Point, Sweep, load_sweep

__all__ = ["EXECUTORS", "Point", "Sweep", "load_sweep", "make_executor", "read_status_table", "run_sweep"]
