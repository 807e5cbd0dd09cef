import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A relative EFFDATA_DATA (the README's `../shared/data`) means: relative to where pytest was started. Notebooks run
# from nbs/ and some tests change directory, so pin it to an absolute path once, for every worker and subprocess.
if os.environ.get("EFFDATA_DATA"):
    os.environ["EFFDATA_DATA"] = str(Path(os.environ["EFFDATA_DATA"]).expanduser().resolve())


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


# Two pytest-xdist workers on a 2-core machine: one torch thread each, or they oversubscribe the cores
# (and so do the subprocesses the tests start).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real browser (Debian's Chromium via Playwright); "
                                       "deselect with -m 'not browser'")
