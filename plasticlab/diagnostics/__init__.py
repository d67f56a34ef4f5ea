"""Plasticity diagnostics (filled in by the diagnostics package)."""
