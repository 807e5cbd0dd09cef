"""Does the robust-accuracy gap of pruned adversarial training shrink with a longer budget? The at_pruning setting
(CIFAR-10 subset, SmallCNN width 16, PGD-AT, R=2, warm 1) at a longer epoch count: full vs Adv-GRAD-MATCH 0.3 vs
random 0.3, set beside the 8-epoch rows of bench/results/at_pruning.json.

    EFFDATA_DATA=../shared/data python bench/at_budget.py [--epochs 24] [--n 4000] [--workers 2]

Each run is a separate process with one torch thread; times are process CPU time (selection counted, evaluation
not). Writes bench/results/at_budget.json and at_budget.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, write  # noqa: E402


def run(cfg: dict) -> dict:
    import torch
    torch.set_num_threads(1)
    from effdata.at import ATTrainer, evaluate_robustness
    from effdata.data import load_dataset
    from effdata.models import SmallCNN
    train = load_dataset("cifar10").subset(range(cfg["n"]))
    test = load_dataset("cifar10", "test")
    torch.manual_seed(0)
    t = ATTrainer(SmallCNN(3, 10, width=16), train, objective="pgd", subset=cfg["subset"], fraction=cfg["fraction"],
                  bullettrain=cfg["bullettrain"],
                  every=2, warm=1 if cfg["subset"] else None, epochs=cfg["epochs"], batch_size=128, lr=0.05, seed=0,
                  progress=False).fit()
    ev = evaluate_robustness(t.model, test, eps=8 / 255, pgd_steps=20)
    return {"method": cfg["subset"] or "full", "fraction": cfg["fraction"], "epochs": cfg["epochs"], "bullettrain": cfg["bullettrain"],
            "clean_acc": ev["clean_acc"], "pgd20_acc": ev["pgd20_acc"], "seconds": t.train_cpu_seconds(),
            "seconds_select": t.cpu_select, "wall_seconds": t.train_seconds()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bullettrain", action="store_true", help="add full + BulletTrain and GRAD-MATCH 0.3 + BulletTrain "
                                                                 "to the rows already in at_budget.json")
    a = ap.parse_args()
    if a.bullettrain: cfgs = [dict(subset=None, fraction=1.0, bullettrain=True), dict(subset="gradmatch", fraction=0.3, bullettrain=True)]
    else: cfgs = [dict(subset=s, fraction=f, bullettrain=False) for s, f in ((None, 1.0), ("gradmatch", 0.3), ("random", 0.3))]
    cfgs = [{**c, "epochs": a.epochs, "n": a.n} for c in cfgs]
    with get_context("spawn").Pool(a.workers) as pool:
        rows = pool.map(run, cfgs)
    old = RESULTS / "at_budget.json"
    if a.bullettrain and old.exists():
        rows = [r for r in json.loads(old.read_text())["rows"] if r["epochs"] == a.epochs and not r.get("bullettrain")] + rows
    base = json.loads((RESULTS / "at_pruning.json").read_text())
    short = [{"method": r["method"], "fraction": r["fraction"], "epochs": base["config"]["epochs"], "bullettrain": r["bullettrain"],
              "clean_acc": r["clean_acc"],
              "pgd20_acc": r["pgd20_acc"], "seconds": r["seconds"], "seconds_select": r["seconds_select"],
              "wall_seconds": r["wall_seconds"]}
             for r in base["rows"] if r["objective"] == "pgd"
             and (r["method"], r["fraction"]) in {("full", 1.0), ("gradmatch", 0.3), ("random", 0.3)}]
    short = [r for r in short if not r["bullettrain"] or a.bullettrain]
    allrows = short + rows
    for r in allrows:
        full = next(f for f in allrows if f["method"] == "full" and f["epochs"] == r["epochs"] and not f.get("bullettrain"))
        r["speedup"] = full["seconds"] / r["seconds"]
        r["robust_acc_drop"] = 100 * (full["pgd20_acc"] - r["pgd20_acc"])
    gap = {str(e): {m + (" +BT" if bt else ""): r["robust_acc_drop"] for r in allrows if r["epochs"] == e
                    for m, bt in [(r["method"], r.get("bullettrain"))] if m != "full" or bt}
           for e in sorted({r["epochs"] for r in allrows})}
    res = {"dataset": base["dataset"], "model": base["model"], "objective": "pgd", "rows": allrows,
           "robust_acc_drop_by_epochs": gap, "machine": machine(1)}
    table = [{"epochs": r["epochs"], "method": r["method"], "fraction": r["fraction"], "BT": bool(r.get("bullettrain")),
              "clean %": 100 * r["clean_acc"],
              "PGD-20 %": 100 * r["pgd20_acc"], "CPU s": r["seconds"], "speed-up": r["speedup"],
              "PGD drop (pts)": r["robust_acc_drop"]} for r in allrows]
    write("at_budget", res, f"Pruned vs full PGD-AT at two training budgets: {base['dataset']}, {base['model']}", table,
          f"The {short[0]['epochs']}-epoch rows are those of at_pruning.json (same code path and settings); the "
          f"{a.epochs}-epoch rows ran here, {a.workers} processes side by side, one torch thread each. Speed-up = CPU "
          "time of full AT / CPU time of the pruned run (selection counted).")
    print((RESULTS / "at_budget.md").read_text())


if __name__ == "__main__":
    main()
