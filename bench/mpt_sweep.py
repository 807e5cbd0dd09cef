"""CIFAR-10 prune-ratio sweep for multi-prize tickets (Conv4 x0.5, MPT-1/32): baseline biprop vs improved at kept 0.05,
0.1, 0.3, 0.8, several seeds, a budget long enough that validation accuracy has flattened, plus fix candidates at kept
0.05. One core (torch threads 1); resumable: every finished run is appended to bench/results/mpt_sweep.jsonl and runs
already there are skipped on restart.

    EFFDATA_DATA=../shared/data nohup python bench/mpt_sweep.py > /tmp/mpt_sweep.log 2>&1 &
    python bench/mpt_sweep.py --list          # the job list in priority order, done or not

Data: 4096 training images of the CIFAR-10 subset (the same draw as bench/mpt.py), 1024 other training images as the
validation split (accuracy per epoch), the 1017 test images for the reported accuracy. Has the accuracy flattened?
One setting is also run at twice the budget. Conv4 x0.25, 12 epochs: sized so that the required runs fit in about an
hour of one core on a machine shared with three other jobs (a first try at x0.5 / 8 epochs, whose one finished run is
in mpt_sweep_x0.5_8epochs.jsonl, was still gaining 3 points of validation accuracy in its last two epochs and cost
about 170 CPU seconds per run).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402

OUT = RESULTS / "mpt_sweep.jsonl"
EPOCHS, WIDTH, BATCH, LR, N_TRAIN, N_VAL = 12, 0.25, 64, 0.1, 4096, 1024
# the fix candidate for kept 0.05: the cubic schedule ends at half the budget, when the cosine lr is already at half
SETTINGS = {"baseline": dict(variant="baseline"), "improved": dict(variant="improved"),
            "improved, no schedule": dict(variant="improved", schedule="none")}


def jobs() -> list[dict]:
    "Every run, in priority order (the required ones first)."
    out = []
    add = lambda setting, kept, seed, epochs=EPOCHS: out.append(dict(setting=setting, kept=kept, seed=seed, epochs=epochs))
    for seed in (0, 1, 2):                                   # 3 seeds at 0.05 and 0.3
        for kept in (0.05, 0.3):
            for s in ("baseline", "improved"): add(s, kept, seed)
    for kept in (0.1, 0.8):                                  # one seed at 0.1 and 0.8
        for s in ("baseline", "improved"): add(s, kept, 0)
    for seed in (0, 1, 2): add("improved, no schedule", 0.05, seed)   # is it the schedule?
    for s in ("baseline", "improved"): add(s, 0.3, 0, 2 * EPOCHS)   # has it flattened? twice the budget
    for seed in (1, 2):                                      # 3 seeds at all four
        for kept in (0.1, 0.8):
            for s in ("baseline", "improved"): add(s, kept, seed)
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
    acc = t.evaluate(te)
    return {**j, "dataset": "cifar10", "model": "conv4", "variant": j["setting"], "accuracy": acc, "val_per_epoch": val,
            "train_seconds_per_epoch": wall, "train_cpu_seconds_per_epoch": cpu, "train_seconds": sum(wall),
            "train_cpu_seconds": sum(cpu), "eval_test_seconds": time.perf_counter() - w0,
            "eval_test_cpu_seconds": time.process_time() - c0, "steps": t.step, "total_steps": t.total_steps,
            "epochs_run": len(wall), "stopped_early": bool(t.stopped and t.step < t.total_steps),
            "mask_change": list(t.mask_changes), "layer_kept": kept_fractions(net),
            "settings": {"width": WIDTH, "batch_size": BATCH, "lr": LR, "train": len(tr), "val": len(va), "test": len(te),
                         "threads": torch.get_num_threads(), **{k: v for k, v in kw.items() if k != "variant"}},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def done_rows() -> list[dict]:
    if not OUT.exists(): return []
    return [json.loads(l) for l in OUT.read_text().splitlines() if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true", help="print the job list and which are done")
    ap.add_argument("--max-jobs", type=int, default=None, help="stop after this many new runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    done = {key(r) for r in done_rows()}
    todo = [j for j in jobs() if key(j) not in done]
    if args.list:
        for j in jobs(): print("done" if key(j) in done else "todo", j)
        return
    tr, va, te = data()
    w0, c0 = time.perf_counter(), time.process_time()
    for i, j in enumerate(todo[:args.max_jobs]):
        r = run_one(j, tr, va, te)
        with open(OUT, "a") as f: f.write(json.dumps(r) + "\n")
        print(f"[{i + 1}/{len(todo)}] {j} test {100 * r['accuracy']:.1f} % val {[round(100 * v, 1) for v in r['val_per_epoch']]} "
              f"train {r['train_seconds']:.0f} s (cpu {r['train_cpu_seconds']:.0f} s); total {time.perf_counter() - w0:.0f} s "
              f"(cpu {time.process_time() - c0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
