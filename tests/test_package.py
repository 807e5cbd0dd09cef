"""Packaging: lazy import, the wheel that `pip install effdata` ships, repo hygiene."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_import_is_lazy():
    code = "import sys, effdata; assert 'torch' not in sys.modules, 'import effdata pulled in torch'; print(effdata.__version__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_version_matches_settings():
    import effdata
    ini = (REPO / "settings.ini").read_text()
    assert f"version = {effdata.__version__}" in ini


def test_wheel_installs_and_imports(tmp_path):
    """Build the wheel, install it (no deps: they are this venv's) into a folder outside the repo, use it from there."""
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)], cwd=REPO,
                   check=True, capture_output=True)
    whl = next(out.glob("effdata-*.whl"))
    names = zipfile.ZipFile(whl).namelist()
    for mod in ("core", "data", "models", "train", "metrics", "cli"):
        assert f"effdata/{mod}.py" in names
    assert not any(n.startswith(("tests/", "nbs/")) for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(whl)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import effdata, effdata.data as d; print(effdata.__file__); "
            "print(len(d.load_dataset('digits')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    path, n = r.stdout.split()
    assert path.startswith(str(target)) and n == "1437"
    meta = next(p for p in zipfile.ZipFile(whl).namelist() if p.endswith("entry_points.txt"))
    assert "effdata = effdata.cli:main" in zipfile.ZipFile(whl).read(meta).decode()


def test_notebooks_carry_no_widget_state():
    for nb in REPO.glob("nbs/**/*.ipynb"):
        assert "application/vnd.jupyter.widget-state+json" not in nb.read_text(), f"{nb} carries saved widget state"


def test_readme_matches_index():
    r = subprocess.run([sys.executable, str(REPO / ".ci" / "readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
