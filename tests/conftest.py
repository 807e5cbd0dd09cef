import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root():
    """The real data folder ($EFFDATA_DATA). Missing data skips locally but fails under CI."""
    root = os.environ.get("EFFDATA_DATA")
    if not root or not (Path(root) / "cifar10").is_dir():
        msg = f"EFFDATA_DATA={root!r} does not hold the project's data folder (cifar10/, mnist/, models/ ...)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(root)
