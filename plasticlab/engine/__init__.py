"""The engine: one training loop for every family; it emits records to a sink."""
