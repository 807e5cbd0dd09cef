"""Every notebook, run through nbdev's test runner with the default flags (slow/cuda cells skipped)."""
from pathlib import Path

import pytest
import nbdev.test as nbt
from nbdev.config import get_config

from conftest import REPO

NOTEBOOKS = sorted(p for p in (REPO / "nbs").rglob("*.ipynb") if not p.name.startswith("_") and ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(p.relative_to(REPO / "nbs")) for p in NOTEBOOKS])
def test_notebook(nb, data_root):
    skip = get_config(path=REPO).get("tst_flags", "").split()
    ok, secs = nbt.test_nb(Path(nb), skip_flags=skip)
    assert ok, f"{nb.name} failed (see the traceback above)"
