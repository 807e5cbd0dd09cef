"""The installed `effdata` console script."""
import shutil
import subprocess
import sys
from pathlib import Path


def _run(*args, **kw):
    beside = Path(sys.executable).parent / "effdata"   # the venv running the tests
    exe = str(beside) if beside.exists() else shutil.which("effdata")
    assert exe, "the effdata console script is not installed (pip install -e .)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600, **kw)


def test_help():
    r = _run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "eval" in r.stdout


def test_eval_zoo(data_root):
    r = _run("--root", str(data_root), "eval", "cifar10_cnn")
    assert r.returncode == 0, r.stderr
    assert "82.50%" in r.stdout


def test_data_table(data_root):
    r = _run("--root", str(data_root), "data")
    assert r.returncode == 0 and "8152" in r.stdout and "17435" in r.stdout


def test_train_and_resume(tmp_path):
    r = _run("train", "--epochs", "3", "--run", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r" / "metrics.jsonl").exists() and "test accuracy" in r.stdout
    again = _run("train", "--epochs", "3", "--run", str(tmp_path / "r"), "--quiet")
    assert again.returncode == 2 and "resume=True" in again.stderr


def test_missing_data_message(tmp_path):
    r = _run("--root", str(tmp_path), "eval", "cifar10_cnn")
    assert r.returncode == 2 and "EFFDATA_DATA" in r.stderr
