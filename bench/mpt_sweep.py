"""CIFAR-10 prune-ratio sweep for multi-prize tickets (Conv4 x0.25, MPT-1/32): baseline biprop vs improved at kept 0.05,
0.1, 0.3, 0.8, 3 seeds each, a budget long enough that validation accuracy has flattened. One core (torch threads 1);
resumable: every finished run is appended to bench/results/mpt_sweep_e<EPOCHS>.jsonl and runs already there are skipped
on restart. Each run trains in a child process (`--job`), so a run picks up the effdata code as it is when it starts.

    EFFDATA_DATA=../shared/data nohup nice -n 5 python bench/mpt_sweep.py > /tmp/mpt_sweep.log 2>&1 &
    python bench/mpt_sweep.py --list          # the job list in priority order, done or not
    python bench/mpt_sweep.py --epochs 12 --list    # the first (12-epoch) sweep, kept in mpt_sweep.jsonl

Data: 4096 training images of the CIFAR-10 subset (the same draw as bench/mpt.py), 1024 other training images as the
validation split (accuracy per epoch), the 1017 test images for the reported accuracy. Has the accuracy flattened?
Every row records its validation accuracy per epoch (the gain over the last quarter of the epochs is the check).

Budget: 36 epochs (2304 steps of batch 64). The first sweep ran 12 epochs (mpt_sweep.jsonl): validation still gained
2-7 points over its last quarter, and kept 0.3 seed 0 at 24 epochs reached 2-2.6 points more test accuracy than at 12
while still gaining ~1.5 over its last quarter. A first try at x0.5 / 8 epochs is in mpt_sweep_x0.5_8epochs.jsonl.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, Rows  # noqa: E402

EPOCHS, WIDTH, BATCH, LR, N_TRAIN, N_VAL = 36, 0.25, 64, 0.1, 4096, 1024


def out_path(epochs: int = EPOCHS) -> Path:
    "The 12-epoch sweep keeps its original file name; longer budgets get their own."
    return RESULTS / ("mpt_sweep.jsonl" if epochs == 12 else f"mpt_sweep_e{epochs}.jsonl")
# the fix candidate for kept 0.05: the cubic schedule ends at half the budget, when the cosine lr is already at half
SETTINGS = {"baseline": dict(variant="baseline"), "improved": dict(variant="improved"),
            "improved, no schedule": dict(variant="improved", schedule="none"),
            # the ablation (`--ablation`): which part of 'improved' costs accuracy at kept 0.3 / 0.8 (validation only)
            "improved, layer-wise threshold": dict(variant="improved", mode="layer"),
            "improved, refresh 1": dict(variant="improved", refresh_every=1),
            "improved, refresh 2": dict(variant="improved", refresh_every=2)}
ABLATION = RESULTS / "mpt_ablation.jsonl"


def ablation_jobs() -> list[dict]:
    """Short runs (12 epochs, seeds 0-2, the first sweep's budget, whose baseline and improved rows they are compared with).
    On the validation split of that sweep, improved trails baseline only at kept 0.8 (all three seeds; at 0.3 they are
    level, at 0.05 and 0.1 improved leads), so the runs at 0.8 come first; at 0.8 the cubic schedule is off (0.8 is
    above its start), so it is the global threshold or the mask refresh."""
    out = []
    for kept, settings in ((0.8, ("improved, layer-wise threshold", "improved, refresh 1", "improved, refresh 2")),
                           (0.3, ("improved, layer-wise threshold", "improved, no schedule"))):
        for s in settings:
            for seed in (0, 1, 2): out.append(dict(setting=s, kept=kept, seed=seed, epochs=12, test=False))
    return out


def jobs(epochs: int = EPOCHS) -> list[dict]:
    """Every run, in priority order: the 12-epoch sweep's own list; for EPOCHS baseline at kept 0.05 and 0.3 first (they
    do not depend on the improved variant's defaults, which the ablation may change), then improved at all four, then
    baseline at 0.1 and 0.8, 3 seeds each; for a budget above EPOCHS (the flattening check: does doubling it still pay?)
    improved at kept 0.05 and 0.3 with 3 seeds, then baseline at both with seed 0."""
    out = []
    add = lambda setting, kept, seed, e=epochs: out.append(dict(setting=setting, kept=kept, seed=seed, epochs=e))
    if epochs == 12:                                         # the first sweep's order (its file is the record)
        for seed in (0, 1, 2):
            for kept in (0.05, 0.3):
                for s in ("baseline", "improved"): add(s, kept, seed)
        for kept in (0.1, 0.8):
            for s in ("baseline", "improved"): add(s, kept, 0)
        for seed in (0, 1, 2): add("improved, no schedule", 0.05, seed)
        for s in ("baseline", "improved"): add(s, 0.3, 0, 2 * epochs)
        for seed in (1, 2):
            for kept in (0.1, 0.8):
                for s in ("baseline", "improved"): add(s, kept, seed)
        return out
    if epochs > EPOCHS:                                      # the flattening check: is EPOCHS enough?
        for seed in (0, 1, 2):
            for kept in (0.05, 0.3): add("improved", kept, seed)
        for kept in (0.05, 0.3): add("baseline", kept, 0)
        return out
    for seed in (0, 1, 2):
        for kept in (0.05, 0.3): add("baseline", kept, seed)
    for seed in (0, 1, 2):
        for kept in (0.05, 0.1, 0.3, 0.8): add("improved", kept, seed)
    for seed in (0, 1, 2):
        for kept in (0.1, 0.8): add("baseline", kept, seed)
    return out


def key(j: dict) -> tuple: return (j["setting"], float(j["kept"]), int(j["seed"]), int(j["epochs"]))


def data():
    from effdata.data import load_dataset
    full = load_dataset("cifar10")
    g = np.random.default_rng(0)
    tr_idx = np.sort(g.choice(len(full), min(N_TRAIN, len(full)), replace=False))   # = bench/mpt.py's _cifar()
    rest = np.setdiff1d(np.arange(len(full)), tr_idx)
    va_idx = np.sort(np.random.default_rng(1).choice(rest, N_VAL, replace=False))
    return full.subset(tr_idx), full.subset(va_idx), load_dataset("cifar10", "test")


def run_one(j: dict, tr, va, te) -> dict:
    "Train one network epoch by epoch: training time (wall and process CPU) per epoch, validation accuracy per epoch."
    from effdata.mpt import MPTTrainer, _normalisation, build, kept_fractions
    kw = dict(SETTINGS[j["setting"]])
    mean, std = _normalisation(tr.name)
    net = build("conv4", tr.shape, tr.num_classes, kept=j["kept"], width=WIDTH, seed=j["seed"], mean=mean, std=std)
    t = MPTTrainer(net, tr, kept=j["kept"], epochs=j["epochs"], batch_size=BATCH, lr=LR, seed=j["seed"], augment=False,
                   progress=False, **kw)
    n, wall, cpu, val = len(t.loader), [], [], []
    while t.step < t.total_steps and not t.stopped:
        w0, c0 = time.perf_counter(), time.process_time()
        t.fit(max_steps=t.step + n)
        wall.append(time.perf_counter() - w0); cpu.append(time.process_time() - c0)
        val.append(t.evaluate(va))
    w0, c0 = time.perf_counter(), time.process_time()
    acc = t.evaluate(te) if j.get("test", True) else None    # the ablation looks at the validation split only
    return {**j, "dataset": "cifar10", "model": "conv4", "variant": j["setting"], "accuracy": acc, "val_per_epoch": val,
            "train_seconds_per_epoch": wall, "train_cpu_seconds_per_epoch": cpu, "train_seconds": sum(wall),
            "train_cpu_seconds": sum(cpu), "eval_test_seconds": time.perf_counter() - w0,
            "eval_test_cpu_seconds": time.process_time() - c0, "steps": t.step, "total_steps": t.total_steps,
            "epochs_run": len(wall), "stopped_early": bool(t.stopped and t.step < t.total_steps),
            "mask_change": list(t.mask_changes), "layer_kept": kept_fractions(net),
            "settings": {"width": WIDTH, "batch_size": BATCH, "lr": LR, "train": len(tr), "val": len(va), "test": len(te),
                         "threads": torch.get_num_threads(), **{k: v for k, v in kw.items() if k != "variant"}},
            "parts": {"mode": t.mode, "schedule": t.schedule, "start_kept": t.start_kept, "ramp": t.ramp,
                      "refresh_every": t.refresh_every, "stop_tol": t.stop_tol, "channels_last": t.channels_last,
                      "min_kept": t.min_kept, "mask_method": next(iter(t.layers.values())).mask_method},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def read_rows(path: Path) -> list[dict]: return Rows(path).rows


def done_rows(epochs: int = EPOCHS) -> list[dict]:
    path = out_path(epochs)
    return read_rows(path) if path.exists() else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="the budget (its own result file)")
    ap.add_argument("--list", action="store_true", help="print the job list and which are done")
    ap.add_argument("--max-jobs", type=int, default=None, help="stop after this many new runs")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)   # the child: one run (JSON), its row on stdout
    ap.add_argument("--ablation", action="store_true", help="the ablation runs (validation only) into mpt_ablation.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.job is not None:
        r = run_one(json.loads(args.job), *data())
        print("ROW " + json.dumps(r), flush=True)
        return
    out = ABLATION if args.ablation else out_path(args.epochs)
    all_jobs = ablation_jobs() if args.ablation else jobs(args.epochs)
    done = {key(r) for r in (read_rows(out) if out.exists() else [])}
    todo = [j for j in all_jobs if key(j) not in done]
    if args.list:
        for j in all_jobs: print("done" if key(j) in done else "todo", j)
        return
    w0 = time.perf_counter(); cpu = 0.0
    for i, j in enumerate(todo[:args.max_jobs]):
        p = subprocess.run([sys.executable, __file__, "--job", json.dumps(j)], capture_output=True, text=True)
        rows = [l[4:] for l in p.stdout.splitlines() if l.startswith("ROW ")]
        if p.returncode != 0 or not rows:
            print(f"[{i + 1}/{len(todo)}] {j} FAILED (exit {p.returncode}):\n{p.stderr[-3000:]}", flush=True)
            sys.exit(1)
        r = json.loads(rows[-1])
        Rows(out).add(r)
        cpu += r["train_cpu_seconds"]
        test = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
        print(f"[{i + 1}/{len(todo)}] {j} test {test} val {[round(100 * v, 1) for v in r['val_per_epoch']]} "
              f"train {r['train_seconds']:.0f} s (cpu {r['train_cpu_seconds']:.0f} s); total {time.perf_counter() - w0:.0f} s "
              f"(training cpu {cpu:.0f} s) {time.strftime('%H:%M:%S')}", flush=True)


if __name__ == "__main__":
    main()
