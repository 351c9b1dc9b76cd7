import logging
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.models_fixtures"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_logged_errors(caplog):
    """A test that makes salova log an ERROR fails (as in PySceneDetect's suite)."""
    caplog.set_level(logging.WARNING, logger="salova")
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("salova")]
    assert not errors, f"salova logged errors: {[r.getMessage() for r in errors]}"
