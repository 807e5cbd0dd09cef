"""GPU check of method 2 (issue 13): PreAct-ResNet-18 (the standard 11 M-parameter net) on the CIFAR-10 subset (8152
train / 1017 test images), three adversarial trainings from the same initial weights, bf16 mixed precision:

  full PGD-AT        PGD-10 (eps 8/255, step 2/255), all images, cosine LR
  Adv-GRAD-MATCH 0.3 the same objective on 30 % of the images, re-selected every R epochs after a warm start
  Fast AT            FGSM with random start (step 1.25 eps), all images, cyclic LR (Wong et al. 2020)

PGD-20 and clean accuracy on the test images after every epoch of the full run (evaluation not timed), so the
"full PGD-AT stopped at the pruned run's time" row is read off its curve with no extra training.

Run by bench/gpu/at.sh. Without a GPU it trains a PreActResNet18(width=8) for one epoch on 256 images with 64 test
images and labels the result "cpu-fallback": a check that the script works, not a benchmark. Environment:
  AT_EPOCHS  epochs of every run (default 30 on a GPU, 1 on the CPU)
  AT_BUDGET  training seconds allowed per run; a run past it stops at the end of that epoch and says so (default 170)
  AT_OUT     result name under bench/results (default at_gpu)
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import machine, sync, write  # noqa: E402


def main():
    from effdata.at import ATTrainer, evaluate_robustness
    from effdata.data import load_dataset
    from effdata.models import PreActResNet18, count_params
    gpu = torch.cuda.is_available()
    torch.backends.cudnn.benchmark = True
    train, test = load_dataset("cifar10"), load_dataset("cifar10", "test")
    if gpu:
        dev, mp, width, bs, epochs = "cuda", "bf16", 64, 128, int(os.environ.get("AT_EPOCHS", 30))
    else:
        dev, mp, width, bs, epochs = "cpu", None, 8, 64, int(os.environ.get("AT_EPOCHS", 1))
        train, test = train.subset(range(256)), test.subset(range(64))
    budget = float(os.environ.get("AT_BUDGET", 170))
    eps = 8 / 255
    common = dict(eps=eps, epochs=epochs, batch_size=bs, seed=0, progress=False, device=dev, mixed_precision=mp,
                  eval_data=test, eval_limit=None)
    runs = {
        "full PGD-AT": dict(objective="pgd", alpha=2 / 255, steps=10, lr=0.1, schedule="cosine"),
        "Adv-GRAD-MATCH 0.3": dict(objective="pgd", alpha=2 / 255, steps=10, lr=0.1, schedule="cosine", subset="gradmatch",
                                   fraction=0.3, every=max(1, epochs // 10), warm=max(0, round(0.1 * epochs)) if epochs > 1 else 0),
        "Fast AT (cyclic LR)": dict(objective="fast", lr=0.2, schedule="cyclic"),
    }
    rows, trainers = [], {}
    for name, kw in runs.items():
        every = 1 if name == "full PGD-AT" else epochs   # the full run's curve gives the equal-time row; the others: the end
        t = ATTrainer(PreActResNet18(10, width=width, seed=0), train, eval_every=every, **common, **kw)
        stopped = False
        for e in range(epochs):          # epoch by epoch, so that AT_BUDGET can stop a run cleanly
            t.fit(max_steps=sum(t.epoch_steps[:e + 1]))
            if t.train_seconds() > budget and e + 1 < epochs: stopped = True; break
        sync()
        ev = (t.curve[-1] if t.curve and t.curve[-1]["step"] == t.step else   # stopped by the budget: evaluate now
              {"epoch": t.position(t.step)[0], **{"eval_" + k: v for k, v in evaluate_robustness(t.model, test, eps=eps).items()}})
        rows.append({"run": name, "epochs": ev["epoch"], "steps": t.step, "train_seconds": t.train_seconds(),
                     "select_seconds": t.seconds_select, "clean_acc": ev["eval_clean_acc"], "pgd20_acc": ev["eval_pgd20_acc"],
                     "stopped_by_budget": stopped})
        trainers[name] = t
        print(rows[-1], flush=True)
    full, gm, fast = rows
    curve = trainers["full PGD-AT"].curve
    fit = [c for c in curve if c["seconds"] <= gm["train_seconds"]]
    if fit:
        rows.append({"run": "full PGD-AT stopped at GRAD-MATCH's time", "epochs": fit[-1]["epoch"], "steps": fit[-1]["step"],
                     "train_seconds": fit[-1]["seconds"], "select_seconds": 0.0, "clean_acc": fit[-1]["eval_clean_acc"],
                     "pgd20_acc": fit[-1]["eval_pgd20_acc"], "stopped_by_budget": False})
    final = evaluate_robustness(trainers["full PGD-AT"].model, test, eps=eps, pgd_steps=20)   # a check on the curve's last point
    out = {"label": "gpu" if gpu else "cpu-fallback", "dataset": f"cifar10 subset ({len(train)} train / {len(test)} test images)",
           "model": f"PreActResNet18(width={width}), {count_params(PreActResNet18(10, width=width))} parameters",
           "mixed_precision": mp or "no", "batch_size": bs, "epochs": epochs, "budget_seconds_per_run": budget, "rows": rows,
           "speedup_gradmatch": full["train_seconds"] / gm["train_seconds"],
           "robust_acc_drop_gradmatch": 100 * (full["pgd20_acc"] - gm["pgd20_acc"]),
           "speedup_fast_at": full["train_seconds"] / fast["train_seconds"],
           "robust_acc_drop_fast_at": 100 * (full["pgd20_acc"] - fast["pgd20_acc"]),
           "gradmatch_minus_fast_at_points": 100 * (gm["pgd20_acc"] - fast["pgd20_acc"]),
           "full_final_recheck": final, "curves": {k: t.curve for k, t in trainers.items()}, "machine": machine()}
    write(os.environ.get("AT_OUT", "at_gpu"), out,
          f"Method 2 on {'a GPU' if gpu else 'the CPU (fallback check, not a benchmark)'}: full PGD-AT vs Adv-GRAD-MATCH 0.3 "
          f"vs Fast AT, {out['model']}",
          [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
          f"Label: {out['label']}. Training seconds are wall-clock with CUDA synchronised, selection counted, evaluation "
          f"(PGD-20 step eps/4 on all test images after every epoch) not. Speed-up of GRAD-MATCH 0.3: "
          f"{out['speedup_gradmatch']:.2f}x at {out['robust_acc_drop_gradmatch']:+.1f} PGD-20 points of drop; Fast AT: "
          f"{out['speedup_fast_at']:.2f}x at {out['robust_acc_drop_fast_at']:+.1f}. One seed: a check, not a headline figure.")
    print({k: v for k, v in out.items() if k not in ("curves", "rows")})


if __name__ == "__main__":
    main()
