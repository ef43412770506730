"""Where the team's shared test data lives, and a skip when it does not."""
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data'


def data_path(*parts):
    """A path under the shared test data; skips the test when it is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f'shared test data not found: {path} (expected next to the repo)')
    return path
