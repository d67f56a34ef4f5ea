"""Every shipped config under configs/ validates."""

from pathlib import Path

import pytest

from plasticlab.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_validates(path):
    if path.parent.name == "transfer":
        from plasticlab.transfer import load_transfer_config

        load_transfer_config(path)
    elif path.parent.name == "sweep":
        from plasticlab.sweep.spec import load_sweep

        assert load_sweep(path).points()
    else:
        load_config(path)
