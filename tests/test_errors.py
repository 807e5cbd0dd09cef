"""Every bad input gets a clear error naming the argument, the value and the fix (issue 14), grouped by kind:
parameters, data, files, model-vs-data fit, provenance, non-finite training, permissions and determinism;
then the same through the `effdata` command (a non-zero exit whose last stderr line carries the message)."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from effdata.core import CheckpointCorruptError, Run, load_checkpoint, read_json, save_checkpoint, write_json
from effdata.data import ImageDataset, Selection, load_dataset
from effdata.models import MLP, LeNet5, SmallCNN, check_classifier, pretrained
from effdata.train import ClassifierTrainer, NonFiniteLossError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def fails(fn, *needles, exc=Exception):
    "Call fn; it must raise `exc` whose message holds every needle. Returns the message."
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    for n in needles: assert n in msg, f"{n!r} not in {msg!r}"
    return msg


# --- parameters --------------------------------------------------------------------------------------------------
TRAINER_PARAMS = [(dict(lr=float("nan")), "lr=nan"), (dict(lr=float("inf")), "lr=inf"), (dict(lr=0), "lr=0"),
                  (dict(lr="0.1"), "lr='0.1'"), (dict(momentum=-0.5), "momentum=-0.5"), (dict(weight_decay=float("nan")), "weight_decay=nan"),
                  (dict(optimizer="lbfgs"), "optimizer='lbfgs'"), (dict(optimizer=None), "optimizer=None"),
                  (dict(schedule="poly"), "schedule='poly'"), (dict(warmup_steps=2.5), "warmup_steps=2.5"),
                  (dict(grad_clip=-1), "grad_clip=-1"), (dict(epochs=1.5), "epochs=1.5"), (dict(batch_size=-3), "batch_size=-3"),
                  (dict(sampler="random"), "sampler='random'"), (dict(seed=1.5), "seed=1.5"), (dict(log_every=0), "log_every=0"),
                  (dict(ckpt_every=-1), "ckpt_every=-1"), (dict(device="gpu0"), "device='gpu0'")]


@pytest.mark.parametrize("kw,needle", TRAINER_PARAMS, ids=[n for _, n in TRAINER_PARAMS])
def test_trainer_parameters(digits, kw, needle):
    fails(lambda: ClassifierTrainer(MLP(), digits, progress=False, **kw), needle, exc=ValueError)


def test_attack_and_objective_parameters():
    from effdata.at import ATTrainer, get_objective
    from effdata.attacks import FGSM, PGD, AutoAttack, TradesKL
    fails(lambda: PGD(8), "eps=8/255", exc=ValueError)                  # the 0..255 scale
    fails(lambda: FGSM(16), "eps=16/255", exc=ValueError)
    fails(lambda: TradesKL(8.0), "more than the whole pixel range", exc=ValueError)
    fails(lambda: get_objective("pgd", eps=8), "eps=8/255", exc=ValueError)
    fails(lambda: PGD(float("inf")), "eps=inf", exc=ValueError)
    fails(lambda: PGD(0.1, alpha=0), "alpha=0", exc=ValueError)
    fails(lambda: get_objective("trades", beta=float("nan")), "beta=nan", exc=ValueError)
    assert PGD(2.0, 0.5, norm="l2").eps == 2.0                           # an L2 budget above 1 is legitimate


def test_diffusion_parameters(digits):
    from effdata.diffusion import DDPMTrainer, get_config, sample, make_unet
    fails(lambda: get_config("digits_small", lr=float("nan")), "lr=nan", exc=ValueError)
    fails(lambda: get_config("digits_small", beta_schedule="cosine"), "beta_schedule='cosine'", "squaredcos_cap_v2", exc=ValueError)
    fails(lambda: get_config("digits_small", beta_start=0.1, beta_end=0.01), "beta_end=0.01", exc=ValueError)
    fails(lambda: get_config("digits_small", attention_resolutions=(16,)), "the levels are (8, 4, 2)", exc=ValueError)
    fails(lambda: get_config("digits_small", num_train_timesteps=0), "num_train_timesteps=0", exc=ValueError)
    fails(lambda: get_config("digits_small", dropout=1.5), "dropout=1.5", exc=ValueError)
    fails(lambda: DDPMTrainer(digits, steps=4, batch_size=0), "batch_size=0", exc=ValueError)
    fails(lambda: DDPMTrainer(digits, "cifar10_small", steps=4), "config='digits_small'", exc=ValueError)
    fails(lambda: sample(make_unet("digits_small"), "digits_small", 2, steps=2, eta=float("nan")), "eta=nan", exc=ValueError)


def test_selection_mpt_red_parameters(digits):
    from effdata.mpt import MPTTrainer, build, train_mpt
    from effdata.red import DnCNN, red_objective
    from effdata.selection import coreset
    fails(lambda: coreset(digits, 30, progress=False), "fraction=30", "not a percentage", exc=ValueError)
    fails(lambda: coreset(digits, 0.3, score="ppca", variance=95, progress=False), "variance=95", exc=ValueError)
    fails(lambda: coreset(digits, 0.3, score="knn", k=0, progress=False), "k=0", exc=ValueError)
    fails(lambda: train_mpt("mlp", digits, digits, kept=30), "kept=30", exc=ValueError)
    fails(lambda: MPTTrainer(build("mlp", digits.shape, 10), digits, ramp=2.0), "ramp=2.0", exc=ValueError)
    fails(lambda: MPTTrainer(build("mlp", digits.shape, 10), digits, min_kept=0), "min_kept=0", exc=ValueError)
    x = torch.rand(2, 1, 8, 8)
    fails(lambda: red_objective(DnCNN(1, 3, 8), MLP(), x, x, gamma=float("nan")), "gamma=nan", exc=ValueError)


# --- data ----------------------------------------------------------------------------------------------------------
def test_image_arrays():
    hwc = np.zeros((4, 16, 16, 3), np.uint8)
    fails(lambda: ImageDataset(hwc, [0, 1, 0, 1], ["a", "b"]), "(N, H, W, C)", "permute(0, 3, 1, 2)", exc=ValueError)
    fails(lambda: ImageDataset(hwc[..., 0], [0, 1, 0, 1], ["a", "b"]), "images[:, None]", exc=ValueError)
    fails(lambda: ImageDataset(np.zeros((4, 1, 8, 8), np.float32), [0, 1, 0, 1], ["a", "b"]), "float32", "* 255", exc=ValueError)
    fails(lambda: ImageDataset(np.zeros((4, 1, 8, 8), np.uint8), [0, 1, 0, 5], ["a", "b"]), "pass labels 0..1", exc=ValueError)
    fails(lambda: ImageDataset(np.zeros((4, 1, 8, 8), np.uint8), np.eye(4)[:, :2], ["a", "b"]), "one integer label per image", exc=ValueError)
    fails(lambda: ImageDataset(np.zeros((4, 1, 8, 8), np.uint8), [0, 1, 0, 1], "ab"), "classes='ab'", exc=ValueError)
    ok = ImageDataset(hwc.transpose(0, 3, 1, 2), [0, 1, 0, 1], ["a", "b"])   # the fix the message gives works
    assert ok.shape == (3, 16, 16)


def test_empty_data(digits):
    fails(lambda: ClassifierTrainer(MLP(), digits.subset([]), progress=False), "holds no samples", exc=ValueError)


# --- files ---------------------------------------------------------------------------------------------------------
def test_selection_files(digits, tmp_path):
    sel = Selection.full(digits); f = sel.save(tmp_path / "s.npz")
    np.save(tmp_path / "idx.npy", np.arange(10))
    fails(lambda: Selection.load(tmp_path / "idx.npy"), "idx.npy is a single .npy array", "Selection(np.load(", exc=ValueError)
    (tmp_path / "cut.npz").write_bytes(f.read_bytes()[:200])
    fails(lambda: Selection.load(tmp_path / "cut.npz"), "cut.npz is truncated or damaged", exc=ValueError)
    (tmp_path / "w.json").write_text(json.dumps({"weights": [1.0], "classes": ["a"]}))
    fails(lambda: Selection.load(tmp_path / "w.json"), "is a JSON file", "--weights", exc=ValueError)
    fails(lambda: Selection.load(tmp_path / "missing.npz"), "missing.npz does not exist", exc=FileNotFoundError)
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    fails(lambda: Selection.load(tmp_path / "other.npz"), "without indices, n, info", exc=ValueError)


def test_class_weight_files(digits, tmp_path):
    from effdata.reweighting import ClassWeights
    Selection.full(digits).save(tmp_path / "s.npz")
    fails(lambda: ClassWeights.load(tmp_path / "s.npz"), "is an .npz", "--selection", exc=ValueError)
    cw = ClassWeights(np.full(10, 0.1), digits.classes, dataset={"name": "digits", "split": "train", "n": 1437, "num_classes": 10})
    text = cw.save(tmp_path / "w.json").read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    fails(lambda: ClassWeights.load(tmp_path / "cut.json"), "cut.json is not valid JSON", exc=ValueError)
    (tmp_path / "cfg.json").write_text(json.dumps({"lr": 0.1}))
    fails(lambda: ClassWeights.load(tmp_path / "cfg.json"), "not class weights", exc=ValueError)
    assert ClassWeights.load(tmp_path / "w.json").dataset["name"] == "digits"


def test_checkpoint_files(tmp_path):
    net = MLP(hidden=(8,)); other = MLP(hidden=(8,), seed=1)
    ck = save_checkpoint(tmp_path / "ck", net, step=3)
    blob = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(blob[:40])
    fails(lambda: load_checkpoint(ck, other), "model.safetensors is not a readable safetensors file", exc=CheckpointCorruptError)
    (ck / "model.safetensors").write_bytes(blob)
    (ck / "meta.json").write_text('{"step": 3, "mo')
    fails(lambda: load_checkpoint(ck, other), "meta.json is not valid JSON", exc=CheckpointCorruptError)
    save_checkpoint(ck, net, step=3); (ck / "state.pt").unlink()
    fails(lambda: load_checkpoint(ck, other), "state.pt is missing", exc=CheckpointCorruptError)
    save_checkpoint(ck, net, step=3); (ck / "state.pt").write_bytes(b"\x80\x02garbage")
    fails(lambda: load_checkpoint(ck, other), "state.pt cannot be read", exc=CheckpointCorruptError)
    assert not torch.equal(net.head.weight, other.head.weight)   # nothing was loaded by the failed calls


def test_run_folders(tmp_path):
    fails(lambda: Run(tmp_path / "nope", resume=True), "does not exist", "drop resume", exc=FileNotFoundError)
    r = Run(tmp_path / "r", {"lr": 0.1}); (tmp_path / "r" / "config.json").write_text('{"lr": 0.')
    fails(lambda: Run(tmp_path / "r", {"lr": 0.1}, resume=True), "config.json is not valid JSON", exc=ValueError)
    r = Run(tmp_path / "r2", {"a": 1}); r.log(step=1); r.log(step=2)
    with open(r.metrics_path, "a") as f: f.write('{"step": 3, "lo')          # torn last line: skipped
    assert [m["step"] for m in r.metrics()] == [1, 2]
    r.metrics_path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')           # damaged in the middle: named
    fails(r.metrics, "metrics.jsonl line 2 is not JSON", exc=ValueError)
    fails(lambda: Run(tmp_path / "r3", keep=0), "keep=0", exc=ValueError)


# --- model vs data ---------------------------------------------------------------------------------------------------
def test_model_fit(digits, data_root):
    from effdata.attacks import PGD, robust_accuracy
    from effdata.features import encoder, extract
    from effdata.metrics import accuracy
    mnist = load_dataset("mnist", "test").subset(range(64))
    cnn = pretrained("cifar10_cnn")
    fails(lambda: accuracy(cnn, mnist), "CifarCNN (pretrained 'cifar10_cnn') expects cifar10 images (3, 32, 32)", exc=ValueError)
    fails(lambda: robust_accuracy(cnn, mnist, PGD(0.1)), "expects cifar10 images", exc=ValueError)
    fails(lambda: extract(encoder("cifar10_cnn"), mnist, progress=False), "encoder does not fit mnist", exc=ValueError)
    fails(lambda: ClassifierTrainer(LeNet5(), digits, progress=False), "LeNet5 expects 1-channel images", exc=ValueError)
    fails(lambda: ClassifierTrainer(MLP(num_classes=100), digits, progress=False), "num_classes=10", exc=ValueError)
    lenet = pretrained("mnist_lenet5"); x = mnist.tensors()[0][:4]
    fails(lambda: PGD(0.1)(lenet, x, torch.tensor([0, 1, 2, 12])), "labels span 0..12", "10 outputs", exc=ValueError)
    fails(lambda: PGD(0.1)(lenet, x[:, :, :8, :8], torch.tensor([0, 1, 2, 3])), "expects mnist images (1, 28, 28)", exc=ValueError)


# --- what files were made for ------------------------------------------------------------------------------------------
def test_provenance(digits):
    from effdata.reweighting import ClassWeights
    other = ImageDataset(digits.images, digits.targets, digits.classes, name="not-digits")
    sel = Selection.full(digits)
    fails(lambda: sel.apply(other), "made for digits (train, 1437 samples, 10 classes)", "not-digits", exc=ValueError)
    fails(lambda: ClassifierTrainer(MLP(), other, selection=sel, progress=False), "made for digits", exc=ValueError)
    c100 = ClassWeights(np.full(100, 0.01), [str(i) for i in range(100)])
    fails(lambda: c100.apply(sel, digits.targets), "90 classes that no label here has", exc=ValueError)
    fails(lambda: c100.apply(sel, digits), "100 classes", "digits has 10", exc=ValueError)


# --- training that goes wrong ----------------------------------------------------------------------------------------------
def test_non_finite_loss(digits, tmp_path):
    tr = ClassifierTrainer(MLP(), digits, lr=1e12, momentum=0.0, batch_size=64, run=tmp_path / "r", ckpt_every=1, progress=False)
    msg = fails(tr.fit, "at step", "the last good checkpoint", "smaller lr", exc=NonFiniteLossError)
    step = int(msg.split("at step ")[1].split()[0])
    last = tr.run.latest_checkpoint()
    assert last is not None and json.loads((last / "meta.json").read_text())["step"] == step - 1
    assert isinstance(NonFiniteLossError("x"), ValueError) and isinstance(NonFiniteLossError("x"), FloatingPointError)


# --- files others can read ---------------------------------------------------------------------------------------------------
def test_written_files_take_the_umask(digits, tmp_path):
    old = os.umask(0o022)
    try:
        tr = ClassifierTrainer(MLP(hidden=(8,)), digits.subset(range(64)), batch_size=32, run=tmp_path / "r", progress=False).fit()
        sel = Selection.full(digits).save(tmp_path / "sel.npz")
        ck = tr.run.latest_checkpoint()
        for f in (sel, tmp_path / "r" / "config.json", ck / "model.safetensors", ck / "meta.json", ck / "state.pt"):
            assert f.stat().st_mode & 0o777 == 0o644, (f, oct(f.stat().st_mode))
        assert ck.stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)


# --- same seed, same result --------------------------------------------------------------------------------------------------
def test_readme_first_look_is_reproducible(digits):
    "The README's first example, with torch's global generator seeded differently each time (as in a new process)."
    test = load_dataset("digits", "test")
    out = []
    for g in (1, 2):
        torch.manual_seed(g)
        sel = Selection(Selection.full(len(digits)).indices[::2], len(digits), info={"method": "every other"})
        tr = ClassifierTrainer(MLP(), digits, selection=sel, epochs=10, batch_size=64, lr=0.05, progress=False).fit()
        out.append((tr.evaluate(test), [p.detach().clone() for p in tr.model.parameters()]))
    assert out[0][0] == out[1][0]
    assert all(torch.equal(a, b) for a, b in zip(out[0][1], out[1][1]))


# --- through the command ---------------------------------------------------------------------------------------------------
def _cli(*args, cwd=None):
    beside = Path(sys.executable).parent / "effdata"
    exe = [str(beside)] if beside.exists() else [sys.executable, "-m", "effdata.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def _last_line(r):
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def cli_fails(*args, needles, cwd=None):
    r = _cli(*args, cwd=cwd)
    assert r.returncode != 0, (args, r.stdout[-500:], r.stderr[-500:])
    last = _last_line(r)
    for n in needles: assert n in last, f"{n!r} not in the last stderr line {last!r} of effdata {' '.join(args)}"


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    from effdata.reweighting import ClassWeights
    d = tmp_path_factory.mktemp("cli")
    np.save(d / "idx.npy", np.arange(10))
    f = Selection.full(digits).save(d / "sel.npz")
    (d / "cut.npz").write_bytes(f.read_bytes()[:300])
    ClassWeights(np.full(100, 0.01), [str(i) for i in range(100)],
                 dataset={"name": "cifar100", "split": "train", "n": 50000, "num_classes": 100}).save(d / "c100.json")
    return d


CLI_CASES = [
    (["train", "--lr", "nan", "--epochs", "1"], ["--lr", "'nan' is not finite"]),
    (["train", "--epochs", "1", "--optimizer", "lbfgs"], ["--optimizer", "'lbfgs'", "choose from"]),
    (["train", "--resume", "--run", "{d}/no-such-run", "--epochs", "1"], ["does not exist", "no-such-run"]),
    (["train", "--selection", "{d}/idx.npy", "--epochs", "1"], ["idx.npy is a single .npy array"]),
    (["train", "--selection", "{d}/cut.npz", "--epochs", "1"], ["cut.npz is truncated or damaged"]),
    (["train", "--lr", "1e12", "--epochs", "1", "--run", "{d}/boom", "--quiet"], ["at step", "smaller lr"]),
    (["diffusion", "--weights", "{d}/c100.json", "--steps", "1"], ["--weights", "100 class weights for digits", "effdata reweight"]),
    (["diffusion", "--weights", "{d}/sel.npz", "--steps", "1"], ["sel.npz is an .npz"]),
    (["diffusion", "--preset", "cifar10_small", "--steps", "1"], ["cifar10_small", "--preset digits_small"]),
    (["at", "--dataset", "digits", "--eps", "8", "--epochs", "1", "--n", "64", "--model", "mlp"], ["--eps", "'8'", "8/255"]),
    (["select", "--dataset", "digits", "--fraction", "30"], ["--fraction", "'30'", "not a percentage"]),
    (["mpt", "--kept", "30"], ["--kept", "'30'", "not a percentage"]),
]


@pytest.mark.parametrize("args,needles", CLI_CASES, ids=[" ".join(a[:3]) for a, _ in CLI_CASES])
def test_cli(files, args, needles):
    cli_fails(*[a.format(d=files) for a in args], needles=needles, cwd=files)


def test_cli_model_fit(data_root, files):
    cli_fails("eval", "cifar10_cnn", "--dataset", "mnist", needles=["expects cifar10 images (3, 32, 32)"], cwd=files)
    cli_fails("select", "--dataset", "mnist", "--encoder", "cifar10_cnn", "--out", str(files / "x.npz"),
              needles=["encoder does not fit mnist"], cwd=files)
