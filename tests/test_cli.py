"""The installed `effdata` console script: help, config files, exit codes, one-line errors, folder datasets."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from effdata.cli import parser

COMMANDS = ["demo", "info", "data", "configs", "eval", "train", "select", "diffusion", "reweight", "at", "mpt", "red"]


def _exe():
    beside = Path(sys.executable).parent / "effdata"   # the venv running the tests
    exe = str(beside) if beside.exists() else shutil.which("effdata")
    assert exe, "the effdata console script is not installed (pip install -e .)"
    return exe


def _run(*args, cwd=None, **kw):
    return subprocess.run([_exe(), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd, **kw)


def test_help():
    r = _run("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "train" in r.stdout and "130" in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_has_every_option_with_default(command):
    r = _run(command, "--help")
    assert r.returncode == 0, r.stderr
    sub = [a for a in parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict)][0].choices[command]
    # the help's option entries: each starts on a line indented by two spaces with the option's name
    entries = {}
    for m in re.finditer(r"^  (-[^\n]*)\n?((?:^ {6,}[^\n]*\n?)*)", r.stdout, re.M):
        names = re.findall(r"--?[\w-]+", m.group(1).split("  ")[0])
        for n in names: entries[n] = " ".join((m.group(1) + " " + m.group(2)).split())
    for a in sub._actions:
        if not a.option_strings or a.dest == "help": continue
        opt = a.option_strings[-1]
        assert a.help, f"effdata {command} {opt} has no help text"
        assert opt in entries, f"effdata {command} --help does not list {opt}"
        assert "default" in entries[opt].lower(), f"effdata {command} {opt}: the help shows no default: {entries[opt]!r}"


def test_eval_zoo(data_root):
    r = _run("--root", data_root, "eval", "cifar10_cnn")
    assert r.returncode == 0, r.stderr
    assert "82.50%" in r.stdout


def test_data_table(data_root):
    r = _run("--root", data_root, "data")
    assert r.returncode == 0 and "8152" in r.stdout and "17435" in r.stdout


def test_train_resume_and_run_folder(tmp_path):
    run = tmp_path / "r"
    r = _run("train", "--epochs", "3", "--run", run, "--quiet")
    assert r.returncode == 0, r.stderr
    assert (run / "metrics.jsonl").exists() and "test accuracy" in r.stdout
    assert (run / "figures" / "curves.html").exists() and (run / "figures" / "plotly.min.js").exists()
    cfg = tomllib.loads((run / "effdata.toml").read_text())
    assert (cfg["command"], cfg["epochs"], cfg["dataset"]) == ("train", 3, "digits")
    again = _run("train", "--epochs", "3", "--run", run, "--quiet")
    assert again.returncode == 1 and "--resume" in again.stderr and "resume=True" not in again.stderr
    assert _run("train", "--epochs", "3", "--run", run, "--quiet", "--resume").returncode == 0
    other = _run("train", "--epochs", "4", "--run", run, "--quiet", "--resume")
    assert other.returncode == 2 and "--epochs 4 (the run used 3)" in other.stderr


def test_default_output_under_runs(tmp_path):
    r = _run("select", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs" / "select" / "coreset.npz").exists()
    assert (tmp_path / "runs" / "select" / "figures" / "class_counts.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_config_precedence(tmp_path):
    (tmp_path / "c.toml").write_text('epochs = 2\nbatch-size = 32\n[train]\nlr = 0.1\n')
    r = _run("train", "--config", tmp_path / "c.toml", "--batch-size", "16", "--run", tmp_path / "r", "--quiet")
    assert r.returncode == 0, r.stderr
    cfg = tomllib.loads((tmp_path / "r" / "effdata.toml").read_text())
    assert (cfg["epochs"], cfg["batch-size"], cfg["lr"], cfg["model"]) == (2, 16, 0.1, "mlp")   # file, flag, file, default
    again = _run("train", "--config", tmp_path / "r" / "effdata.toml", "--run", tmp_path / "r2", "--quiet")   # reusable
    assert again.returncode == 0, again.stderr
    assert tomllib.loads((tmp_path / "r2" / "effdata.toml").read_text())["batch-size"] == 16


def test_shipped_configs_resolve():
    from effdata.cli import CONFIG_DIR, _parse
    names = sorted(f.stem for f in CONFIG_DIR.glob("*.toml"))
    assert {"at-cifar10-paper", "diffusion-cifar10-paper", "mpt-cifar10-paper", "red-cifar10-paper"} <= set(names)
    a = _parse(["at", "--config", "at-cifar10-paper", "--epochs", "3"])
    assert (a.dataset, a.model, a.subset, a.epochs, a.eps) == ("cifar10", "resnet18", "gradmatch", 3, 8 / 255)
    assert "at-cifar10-paper" in _run("configs").stdout


# (arguments, expected exit code, a phrase of the one-line message)
BAD = [
    (["select", "--score", "gausian"], 2, "invalid choice: 'gausian'"),
    (["select", "--fraction", "30"], 2, "not a percentage"),
    (["select", "--encoder", "resnet"], 2, "invalid choice"),
    (["train", "--epochs", "0"], 2, "positive integer"),
    (["train", "--lr", "nan"], 2, "not finite"),
    (["train", "--model", "lenet5"], 2, "lenet5 needs 28x28"),
    (["train", "--dataset", "cifar"], 2, "folder:PATH"),
    (["train", "--resume", "--run", "{tmp}/nope"], 2, "does not exist"),
    (["train", "--config", "{tmp}/none.toml"], 2, "no such file"),
    (["train", "--image-size", "32"], 2, "only folder:PATH datasets"),
    (["eval", "nosuchmodel"], 2, "invalid choice"),
    (["at", "--eps", "8"], 2, "8/255"),
    (["at", "--fraction", "0.3"], 2, "without --subset"),
    (["at", "--n", "0"], 2, "positive integer"),
    (["mpt", "--kept", "10"], 2, "not a percentage"),
    (["reweight"], 2, "--reference is missing"),
    (["reweight", "--reference", "{tmp}/noref"], 2, "no such folder"),
    (["diffusion", "--weights", "{tmp}/bad.json", "--steps", "1", "--run", "{tmp}/d"], 1, "bad.json"),
    (["train", "--selection", "{tmp}/x.npy", "--run", "{tmp}/t"], 1, "x.npy"),
    (["red", "train", "--pairs", "{tmp}/nopairs.safetensors"], 2, "no such file"),
    (["red", "build-data", "--run", "{tmp}/red"], 2, "--classifier is missing"),
    (["red", "build-data", "--classifier", "{tmp}", "--run", "{tmp}/red"], 2, "neither a zoo model"),
    (["red", "build-data", "--attacks", "fgsn"], 2, "invalid choice"),
    (["train", "--dataset", "folder:{tmp}/nofolder", "--run", "{tmp}/f"], 1, "does not exist"),
    (["train", "--root", "{tmp}/empty", "--dataset", "mnist", "--run", "{tmp}/m"], 1, "--download"),
    (["select", "--nosuchflag"], 2, "unrecognized arguments"),
]


def test_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    np.save(tmp_path / "x.npy", np.arange(3))
    seen = set()
    for args, code, phrase in BAD:
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        r = _run(*args)
        err = r.stderr
        assert r.returncode == code, (args, r.returncode, err)
        assert "Traceback" not in err and phrase in err, (args, err)
        lines = [l for l in err.splitlines() if l.startswith("effdata")]
        assert len(lines) == 1, (args, err)
        assert "=True" not in err and "load_dataset(" not in err and "build_pairs(" not in err, (args, err)
        seen.add(tuple(args[:2]))
    assert len(BAD) >= 15 and len(seen) >= 15


def test_debug_shows_traceback(tmp_path):
    r = _run("train", "--dataset", f"folder:{tmp_path}/nofolder", "--run", tmp_path / "f", "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr and "does not exist" in r.stderr


def test_ctrl_c_exits_130_with_resume_advice(tmp_path):
    run = tmp_path / "r"
    p = subprocess.Popen([_exe(), "train", "--epochs", "5000", "--run", str(run), "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (run / "metrics.jsonl").exists() and time.time() - t0 < 120: time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err and "resume=True" not in err
    assert any((run / "checkpoints").glob("step-*"))           # the checkpoint the advice points to


def _imagenet_folder(tmp_path, data_root):
    "The 20 foolbox ImageNet JPEGs (19 of 512x512, one of 1024x683) in two classes: ImageNet label below 500 or not."
    root = tmp_path / "imagenet"
    for f in sorted((data_root / "foolbox_samples").glob("imagenet_*.jpg")):
        d = root / ("below500" if int(f.stem.split("_")[-1]) < 500 else "from500")
        d.mkdir(parents=True, exist_ok=True); (d / f.name).symlink_to(f)
    return root


def test_folder_dataset_select_train_red(tmp_path, data_root):
    inet = _imagenet_folder(tmp_path, data_root)
    ds = f"folder:{inet}"
    r = _run("select", "--dataset", ds, "--run", tmp_path / "s", "--quiet")          # mixed sizes: refused clearly
    assert r.returncode == 1 and "--image-size S" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _run("select", "--dataset", ds, "--image-size", "32", "--fraction", "0.5", "--run", tmp_path / "s", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "8 of 16" in r.stdout
    r = _run("train", "--dataset", ds, "--image-size", "32", "--model", "small_cnn", "--epochs", "2", "--run", tmp_path / "clf", "--quiet")
    assert r.returncode == 0, r.stderr
    red = ["--dataset", ds, "--image-size", "32", "--classifier", tmp_path / "clf", "--run", tmp_path / "red", "--quiet"]
    r = _run("red", "build-data", *red, "--split", "train", "--attacks", "fgsm", "pgd", "--steps", "2", "--eps", "8/255")
    assert r.returncode == 0, r.stderr
    r = _run("red", "train", *red, "--setting", "DO", "--depth", "3", "--width", "8", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    r = _run("red", "evaluate", *red, "--attr-limit", "4", "--ig-steps", "2")
    assert r.returncode == 0, r.stderr
    assert "DO" in r.stdout and (tmp_path / "red" / "eval" / "figures" / "red_metrics.html").exists()
    r = _run("red", "build-data", "--dataset", ds, "--image-size", "32", "--classifier", "cifar10_cnn", "--run", tmp_path / "r2")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr      # a zoo model for 10 classes: says so


def test_folder_dataset_at_and_mpt(tmp_path, data_root):
    ds = ["--dataset", f"folder:{_imagenet_folder(tmp_path, data_root)}", "--image-size", "16", "--quiet"]
    r = _run("at", *ds, "--epochs", "1", "--eval-limit", "4", "--run", tmp_path / "at")
    assert r.returncode == 0, r.stderr
    r = _run("mpt", *ds, "--epochs", "1", "--run", tmp_path / "mpt")
    assert r.returncode == 0, r.stderr
