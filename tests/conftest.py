import os
from pathlib import Path

import pytest

from helpers import cut_corpus

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The offline corpus mirror: $JAX_LLM_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("JAX_LLM_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    assert d.is_dir(), f"corpus mirror not found at {d}; set JAX_LLM_DATA_DIR"
    return d


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, data_dir) -> Path:
    """60 KB of tinyshakespeare: enough for the tiny training runs of the core tests."""
    return cut_corpus(data_dir, tmp_path_factory.mktemp("corpus") / "shakespeare.txt")
