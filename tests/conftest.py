"""Shared test helpers: the benchmark data folder beside the repository."""

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    """``../shared/data`` (Set5, Set14, ...); the test is skipped when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR} (research data, not in the repository)")
    return DATA_DIR
