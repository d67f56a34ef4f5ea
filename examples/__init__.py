"""Examples of user code for plasticlab (docs/custom.md). Each module imports only torch."""
