"""Data pruning for faster adversarial training, on the CIFAR-10 subset (CPU): full PGD-AT and TRADES against
Adv-GRAD-MATCH, Adv-GLISTER and random subsets at kept fractions 0.2-0.5, with and without BulletTrain, all
from the same initial weights. Also our PGD against torchattacks' PGD on the same model and data.

    EFFDATA_DATA=../shared/data python bench/at_pruning.py [--n 4000] [--epochs 8] [--threads 1] [--quick]

Writes bench/results/at_pruning.json and at_pruning.md (rewritten after every run, so a stopped benchmark
keeps what it measured; `--resume` skips rows already in the JSON). Speed-up = time of full AT / time of
the pruned run, selection included, evaluation excluded. Time is the process's CPU time with one torch thread
(`seconds`; on an idle machine it equals wall-clock, and unlike wall-clock it does not grow when other jobs share
the cores); wall-clock is recorded too (`wall_seconds`, `speedup_wall`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, write  # noqa: E402

from effdata.at import ATTrainer, evaluate_robustness  # noqa: E402
from effdata.attacks import PGD, AutoAttack, robust_accuracy  # noqa: E402
from effdata.data import load_dataset  # noqa: E402
from effdata.models import SmallCNN  # noqa: E402


def model(width, seed=0):
    torch.manual_seed(seed)
    return SmallCNN(3, 10, width=width)


def pgd_vs_torchattacks(width: int, n: int = 512, repeat: int = 3) -> dict:
    "Our PGD-10 vs torchattacks' PGD-10 (eps 8/255, step 2/255, random start), same model and images, alternated; CPU time."
    try:
        import torchattacks
    except ImportError:
        return {"pgd_vs_torchattacks": None, "note": "torchattacks not installed (pip install torchattacks --no-deps)"}
    data = load_dataset("cifar10", "test")
    x, y = data.images[:n].float() / 255, data.targets[:n]
    m = model(width).eval()
    ours = PGD(8 / 255, 2 / 255, 10)
    theirs = torchattacks.PGD(m, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)
    t_ours, t_theirs = [], []       # process CPU time (1 torch thread): robust to other jobs on the machine
    ours(m, x[:64], y[:64]); theirs(x[:64], y[:64])
    for _ in range(repeat):
        t0 = time.process_time(); a = ours(m, x, y); t_ours.append(time.process_time() - t0)
        t0 = time.process_time(); b = theirs(x, y); t_theirs.append(time.process_time() - t0)
    with torch.no_grad():
        acc_ours = (m(a).argmax(1) == y).float().mean().item(); acc_theirs = (m(b).argmax(1) == y).float().mean().item()
    return {"pgd_vs_torchattacks": min(t_theirs) / min(t_ours), "seconds_ours": min(t_ours), "seconds_torchattacks": min(t_theirs),
            "acc_under_ours": acc_ours, "acc_under_torchattacks": acc_theirs, "images": n, "torchattacks": torchattacks.__version__}


PLAN = [  # (objective, subset, fraction, bullettrain)
    ("pgd", None, 1.0, False),
    ("pgd", "gradmatch", 0.3, False),
    ("pgd", "glister", 0.3, False),
    ("pgd", "random", 0.3, False),
    ("pgd", "gradmatch", 0.2, False),
    ("pgd", "gradmatch", 0.5, False),
    ("pgd", "gradmatch", 0.3, True),
    ("pgd", None, 1.0, True),
    ("trades", None, 1.0, False),
    ("trades", "gradmatch", 0.3, False),
    ("trades", "random", 0.3, False),
    ("trades", "gradmatch", 0.3, True),
]


def summary(rows: list[dict]) -> dict:
    out = {}
    for obj in ("pgd", "trades"):
        full = next((r for r in rows if r["objective"] == obj and r["method"] == "full" and not r["bullettrain"]), None)
        if full is None: continue
        for bt in (False, True):
            cands = [r for r in rows if r["objective"] == obj and r["method"] != "full" and r["bullettrain"] == bt]
            if bt: cands += [r for r in rows if r["objective"] == obj and r["method"] == "full" and r["bullettrain"]]
            for r in cands:
                r["speedup"] = full["seconds"] / r["seconds"]
                r["speedup_wall"] = full["wall_seconds"] / r["wall_seconds"]
                r["robust_acc_drop"] = 100 * (full["pgd20_acc"] - r["pgd20_acc"])
            ok = [r for r in cands if r["robust_acc_drop"] <= 1.0]
            best = max(ok, key=lambda r: r["speedup"]) if ok else (min(cands, key=lambda r: r["robust_acc_drop"]) if cands else None)
            if best is not None:
                out[(obj, bt)] = dict(speedup=best["speedup"], robust_acc_drop=best["robust_acc_drop"], within_1_point=bool(ok),
                                      row=f"{best['method']} {best['fraction']}" + (" +BT" if bt else ""))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000, help="training images from the CIFAR-10 subset")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--every", type=int, default=2, help="re-select every R epochs")
    ap.add_argument("--warm", type=int, default=1, help="warm-start epochs on the full data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aa", type=int, default=200, help="AutoAttack (standard) on this many test images, full and best rows")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--only-torchattacks", action="store_true", help="re-measure our PGD vs torchattacks into the existing JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.quick: a.n, a.epochs, a.aa = 600, 2, 20
    train = load_dataset("cifar10").subset(range(a.n))
    test = load_dataset("cifar10", "test")
    out_path = RESULTS / "at_pruning.json"
    prev = json.loads(out_path.read_text()) if a.resume and out_path.exists() else {}
    result = {"dataset": f"cifar10 subset ({a.n} train / {len(test)} test images)",
              "model": f"SmallCNN(width={a.width}), {sum(p.numel() for p in model(a.width).parameters())} parameters",
              "config": dict(epochs=a.epochs, batch_size=128, lr=0.05, schedule="cosine", every=a.every, warm=a.warm,
                             eps="8/255", train_attack="PGD-10 step 2/255 (TRADES: KL attack, step 0.007, beta 6)",
                             eval="PGD-20 step 2/255 on all test images; AutoAttack standard on the first "
                                  f"{a.aa} test images for the full and best pruned rows", bullettrain="robust_margin 0.5"),
              "machine": machine(a.threads), "rows": prev.get("rows", [])}
    if a.only_torchattacks:
        prev = json.loads(out_path.read_text())
        prev["torchattacks"] = pgd_vs_torchattacks(a.width, repeat=5)
        prev["pgd_vs_torchattacks"] = prev["torchattacks"]["pgd_vs_torchattacks"]
        prev["torchattacks"]["machine"] = machine(a.threads)
        return save(prev)
    if "torchattacks" in prev: result["torchattacks"] = prev["torchattacks"]
    if "torchattacks" not in result:
        result["torchattacks"] = pgd_vs_torchattacks(a.width)
    result["pgd_vs_torchattacks"] = result["torchattacks"]["pgd_vs_torchattacks"]
    done = {(r["objective"], r["method"], r["fraction"], r["bullettrain"]) for r in result["rows"]}
    for obj, subset, frac, bt in PLAN:
        key = (obj, subset or "full", frac, bt)
        if key in done: continue
        t = ATTrainer(model(a.width), train, objective=obj, subset=subset, fraction=frac, bullettrain=bt,
                      every=a.every, warm=a.warm if subset else None, epochs=a.epochs, batch_size=128, lr=0.05,
                      seed=0, progress=False)
        t.fit()
        ev = evaluate_robustness(t.model, test, eps=8 / 255, pgd_steps=20)
        row = {"objective": obj, "method": subset or "full", "fraction": frac, "bullettrain": bt,
               "clean_acc": ev["clean_acc"], "pgd20_acc": ev["pgd20_acc"], "aa_acc": None,
               "seconds": t.train_cpu_seconds(), "seconds_select": t.cpu_select, "wall_seconds": t.train_seconds(),
               "wall_seconds_select": t.seconds_select, "steps": t.total_steps}
        if subset is None and not bt or (subset == "gradmatch" and frac == 0.3):
            row["aa_acc"] = robust_accuracy(t.model, test, AutoAttack(8 / 255), limit=a.aa)
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        save(result)
    save(result)


def save(result):
    rows = result["rows"]
    s = summary(rows)
    pgd = s.get(("pgd", False)) or {}
    pgd_bt = s.get(("pgd", True)) or {}
    trades = s.get(("trades", False)) or {}
    trades_bt = s.get(("trades", True)) or {}
    full = next((r for r in rows if r["objective"] == "pgd" and r["method"] == "full" and not r["bullettrain"]), None)
    result["full"] = {k: full[k] for k in ("clean_acc", "pgd20_acc", "aa_acc", "seconds")} if full else None
    result["speedup"], result["robust_acc_drop"] = pgd.get("speedup"), pgd.get("robust_acc_drop")
    result["speedup_bullettrain"], result["robust_acc_drop_bullettrain"] = pgd_bt.get("speedup"), pgd_bt.get("robust_acc_drop")
    result["summary"] = {f"{o}{' +BT' if bt else ''}": v for (o, bt), v in s.items()}
    result["speedup_trades"], result["speedup_trades_bullettrain"] = trades.get("speedup"), trades_bt.get("speedup")
    table = [{"objective": r["objective"], "method": r["method"], "fraction": r["fraction"], "BT": r["bullettrain"],
              "clean %": 100 * r["clean_acc"], "PGD-20 %": 100 * r["pgd20_acc"],
              "AA %": None if r["aa_acc"] is None else 100 * r["aa_acc"], "CPU s": r["seconds"], "wall s": r["wall_seconds"],
              "select s": r["seconds_select"], "speed-up": r.get("speedup", 1.0 if r["method"] == "full" and not r["bullettrain"] else None),
              "PGD drop (pts)": r.get("robust_acc_drop")} for r in rows]
    ta = result.get("torchattacks", {})
    notes = ["Speed-ups are ratios of CPU time (one torch thread; selection counted, evaluation not): the machine was "
             "shared with other jobs, which inflates wall-clock unevenly; wall-clock ratios are in the JSON (speedup_wall).",
             f"Speed-up at PGD-20 within 1 point of full AT (best pruned row): {_s(result['summary'])}.",
             f"Our PGD-10 vs torchattacks PGD-10, same model and {ta.get('images')} images, CPU time, best of 5 alternated: torchattacks / ours = "
             f"{ta.get('pgd_vs_torchattacks') and round(ta['pgd_vs_torchattacks'], 3)}.",
             f"Config: {json.dumps(result['config'])}"]
    write("at_pruning", result, f"Data pruning for faster adversarial training: {result['dataset']}, {result['model']}",
          table, "\n\n".join(notes))


def _s(summary):
    return "; ".join(f"{k}: {v['speedup']:.2f}x ({v['row']}, drop {v['robust_acc_drop']:.1f} pts"
                     f"{'' if v['within_1_point'] else ', none within 1 point: smallest drop shown'})" for k, v in summary.items())


if __name__ == "__main__":
    main()
