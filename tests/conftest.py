import os
from pathlib import Path

import pytest

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
