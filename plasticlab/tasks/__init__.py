"""Task families: task t is a pure function of (seed, t). Importing registers them all."""
