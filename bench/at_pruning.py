"""Data pruning for faster adversarial training, to the protocol of issue 13: two settings, every baseline that
matters, three seeds, convergence judged on a held-out validation split.

    EFFDATA_DATA=../shared/data python bench/at_pruning.py [--settings cifar10 mnist] [--seeds 0 1 2] [--epochs 30]
    python bench/at_pruning.py --tune      # first: choose R, warm start and LR schedule on the validation split
    python bench/at_pruning.py --report    # rewrite the JSON + MD from the rows file, training nothing
    python bench/at_pruning.py --smoke     # the whole pipeline on tiny data, about 2-3 CPU minutes

Settings
  cifar10  all 8152 train images of the CIFAR-10 subset, 10 % held out (class-balanced) as the validation split,
           PreActResNet18(width=16) (0.70 M parameters; `--cifar-width 64` is the standard 11 M net), eps 8/255,
           PGD-10 step 2/255; tested on the 1017 test images.
  mnist    all 17,435 train images of the MNIST subset, 10 % held out, LeNet5 (the zoo's architecture), eps 0.3,
           PGD-10 step 0.075 (2.5 eps / steps); tested on the MNIST test set (`--eval-limit`). The zoo's PGD-trained
           LeNet5 (`mnist_lenet5_robust`, 98.6 % clean) is evaluated with the same attack as where full AT should end.

Rows, per setting and seed (same initial weights per seed; every row trains for the same `--epochs`):
  full PGD-AT (validation PGD-20 after every epoch, a checkpoint per epoch) / TRADES / MART; Fast AT (FGSM-RS step
  1.25 eps, cyclic LR peaking at `--fast-lr`, full data); Adv-GRAD-MATCH / Adv-GLISTER / random / static EL2N at
  kept 0.2, 0.3, 0.5 with and without BulletTrain (the paper rule); full PGD-AT with BulletTrain under both rules and
  GRAD-MATCH 0.3 with the fixed rule (the earlier package rule, reported beside it); TRADES full+BT, GRAD-MATCH 0.3
  +- BT, random 0.3; MART at GRAD-MATCH 0.3. Then, with no extra training, "full PGD-AT stopped at the pruned run's
  time": for every pruned PGD row, the full run's last per-epoch checkpoint whose CPU time is at most the pruned
  run's, evaluated on the test images (`method: full_stopped`).

Convergence: the full PGD-AT run is called converged when its best validation PGD-20 accuracy over the last quarter
of the epochs is no more than `--conv-tol` points above its best before; `converged_epoch` is the first epoch
within `--conv-tol` of its best. A run that is not converged says so in the table (rerun with more epochs).

Tuning (`--tune`, seed 0, validation split only): the LR schedule of full PGD-AT (cosine / step), then R (re-select
every 1, 2, 4 epochs) and the warm start (10 % / 20 % of the epochs) for GRAD-MATCH 0.3; the main rows use the
choice (recorded in the result as `tuned`), or the defaults (cosine, R = 2, warm 10 %) without tune rows.

Time: process CPU time with one torch thread (selection counted, evaluation not) and wall-clock, both recorded;
speed-ups are ratios of mean CPU times over the seeds. Rows are appended to a jsonl as each finishes and skipped on
restart; an interrupted row resumes from its last epoch checkpoint (run folders under `--workdir`; the full PGD-AT
runs keep a checkpoint per epoch, about 1 GB in all at 30 epochs and 3 seeds).

Cost, measured (`--smoke` writes it to bench/results/at_pruning_smoke.json, `cost_estimate`): one PGD-10 training
step costs 0.038 CPU s per image with PreActResNet18(width=16) and 0.0086 s with LeNet5 (one torch thread, this
2-core Xeon), so an epoch of full PGD-AT takes about 280 CPU s on the 7,337 CIFAR-10 training images and 135 s on the
15,692 MNIST ones. The smoke rows put the whole plan at about 11 full-PGD-AT runs per setting and seed (Fast AT,
pruned and BulletTrain rows are cheaper, TRADES / MART dearer). At 30 epochs and 3 seeds: about 3.3 CPU-days for
CIFAR-10 and 1.5 for MNIST, about 5 CPU-days in all (2.5 days on both cores: two processes sharing the rows file, split by `--seeds`), plus
evaluation (the full runs' per-epoch validation PGD-20, every row's test PGD-20; not counted in the times) and `--tune`
(about 5 more full-run equivalents per setting). With `--cifar-width 64` (the standard net) CIFAR-10 costs roughly
16x more: GPU only. On one H200 (bench/gpu/at.sh measures the width-64 net in bf16) the whole plan at width 64 is
estimated at a few hours with `--device cuda` (a PGD-AT epoch over 8,152 images takes seconds there); times on a
GPU are wall-clock, the CPU-time columns then mean little.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, Rows, machine, write  # noqa: E402

from effdata.at import ATTrainer, _split_validation, evaluate_robustness  # noqa: E402
from effdata.core import load_checkpoint  # noqa: E402
from effdata.data import load_dataset  # noqa: E402
from effdata.models import LeNet5, PreActResNet18, count_params, pretrained  # noqa: E402

STRATEGIES = ("gradmatch", "glister", "random", "el2n")
FRACTIONS = (0.2, 0.3, 0.5)
PAPER = {"speedup": 3.44, "speedup_bullettrain": 5.66, "note": "Li et al. 2023 (METHODS.md, method 2): CIFAR-10, "
         "Adv-GRAD-MATCH / Adv-GLISTER, similar robust accuracy; 5.66x with BulletTrain (TRADES)"}


# --- settings and plan ---------------------------------------------------------------------------------------------
def settings(a) -> dict:
    return {
        "cifar10": dict(dataset="cifar10", n=a.cifar_n, eps=8 / 255, alpha=2 / 255, steps=10, lr=a.lr, batch_size=128,
                        model=lambda seed: PreActResNet18(10, width=a.cifar_width, seed=seed),
                        model_name=f"PreActResNet18(width={a.cifar_width})"),
        "mnist": dict(dataset="mnist", n=a.mnist_n, eps=0.3, alpha=0.075, steps=10, lr=a.lr, batch_size=128,
                      model=lambda seed: LeNet5(seed=seed), model_name="LeNet5 (advertorch / zoo architecture)"),
    }


def plan(fractions, strategies) -> list[tuple]:
    "(objective, method, fraction, bullettrain rule or None) of every main row of one setting and seed."
    rows = [("pgd", "full", 1.0, None), ("trades", "full", 1.0, None), ("fast", "full", 1.0, None), ("mart", "full", 1.0, None)]
    rows += [("pgd", s, f, bt) for s in strategies for f in fractions for bt in (None, "paper")]
    rows += [("pgd", "full", 1.0, "paper"), ("pgd", "full", 1.0, "fixed")]
    f3 = 0.3 if 0.3 in fractions else fractions[0]
    if "gradmatch" in strategies: rows += [("pgd", "gradmatch", f3, "fixed")]
    rows += [("trades", "full", 1.0, "paper")]
    rows += [("trades", s, f3, bt) for s, bt in (("gradmatch", None), ("gradmatch", "paper"), ("random", None)) if s in strategies]
    if "gradmatch" in strategies: rows += [("mart", "gradmatch", f3, None)]
    return rows


def key(r: dict) -> tuple:
    return (r["stage"], r["setting"], r["seed"], r["objective"], r["method"], r["fraction"], r["bullettrain"],
            r.get("schedule"), r.get("every"), r.get("warm"), r.get("matched"))


# --- data ----------------------------------------------------------------------------------------------------------
_DATA = {}


def data(setting: str, cfg: dict, a):
    "(train pool, validation split, test images) of a setting; the split is class-balanced and fixed (seed 0)."
    if setting not in _DATA:
        full = load_dataset(cfg["dataset"])
        full = full.subset(range(min(cfg["n"], len(full))))
        pool, val = _split_validation(full, a.val_fraction, 0)
        test = load_dataset(cfg["dataset"], "test")
        if a.eval_limit: test = test.subset(range(min(a.eval_limit, len(test))))
        _DATA[setting] = (full.subset(pool), full.subset(val), test)
    return _DATA[setting]


# --- one training run ----------------------------------------------------------------------------------------------
def train(setting, cfg, a, seed, objective, method, fraction, bt, *, schedule, every, warm_frac, stage="main",
          eval_val=False, keep_all=False):
    pool, val, test = data(setting, cfg, a)
    fast = objective == "fast"
    kw = dict(objective=objective, eps=cfg["eps"], bullettrain=bt or False, epochs=a.epochs, batch_size=cfg["batch_size"],
              lr=a.fast_lr if fast else cfg["lr"], schedule="cyclic" if fast else schedule, seed=seed, progress=False,
              device=a.device, eval_data=val if eval_val else None, eval_every=1, eval_limit=None)
    if not fast: kw.update(alpha=cfg["alpha"], steps=cfg["steps"])
    if method != "full":
        kw.update(subset=method, fraction=fraction, every=every, warm=max(0, min(a.epochs - 1, round(warm_frac * a.epochs))))
    name = "_".join(str(x) for x in (stage, setting, f"s{seed}", objective, method, fraction, bt or "nobt", kw["schedule"], every,
                                     warm_frac if method != "full" else ""))
    folder = Path(a.workdir) / name
    t = ATTrainer(cfg["model"](seed), pool, run=folder, resume=(folder / "config.json").exists(), **kw)
    if keep_all: t.run.keep = 10 ** 6          # a checkpoint per epoch: the equal-time rows are read from them
    t.fit()
    out = {"stage": stage, "setting": setting, "seed": seed, "objective": objective, "method": method,
           "fraction": fraction, "bullettrain": bt, "schedule": kw["schedule"], "every": kw.get("every"),
           "warm": kw.get("warm"), "epochs": a.epochs, "k": t.k, "steps": t.total_steps,
           "seconds": t.train_cpu_seconds(), "seconds_select": t.cpu_select,
           "wall_seconds": t.train_seconds(), "wall_seconds_select": t.seconds_select, "run": str(folder)}
    if eval_val: out["curve"] = t.curve
    target = val if stage == "tune" else test
    ev = evaluate_robustness(t.model, target, eps=cfg["eps"], pgd_steps=20, batch_size=256)
    out.update(clean_acc=ev["clean_acc"], pgd20_acc=ev["pgd20_acc"], evaluated_on="validation" if stage == "tune" else "test")
    return out


def convergence(curve: list[dict], tol: float) -> dict:
    "Whether the validation PGD-20 curve has flattened: the last quarter adds at most `tol` points to the best before."
    acc = [100 * c["eval_pgd20_acc"] for c in curve]
    if len(acc) < 4: return {"converged": False, "converged_epoch": None, "val_pgd20_best": max(acc, default=None),
                             "note": "fewer than 4 evaluated epochs"}
    q = max(1, len(acc) // 4)
    best, gain = max(acc), max(acc[-q:]) - max(acc[:-q])
    return {"converged": gain <= tol, "converged_epoch": curve[next(i for i, v in enumerate(acc) if v >= best - tol)]["epoch"],
            "val_pgd20_best": best, "last_quarter_gain": gain}


def stopped_rows(rows: list[dict], setting, cfg, a, seed) -> list[dict]:
    "Full PGD-AT stopped at each pruned PGD row's CPU time, from the full run's per-epoch checkpoints."
    full = next((r for r in rows if r["stage"] == "main" and r["setting"] == setting and r["seed"] == seed
                 and r["objective"] == "pgd" and r["method"] == "full" and r["bullettrain"] is None), None)
    if full is None: return []
    ckpts = {int(p.name.split("-")[1]): p for p in (Path(full["run"]) / "checkpoints").glob("step-*")}
    _, _, test = data(setting, cfg, a)
    done = {r.get("matched") for r in rows if r["method"] == "full_stopped" and r["setting"] == setting and r["seed"] == seed}
    out = []
    for r in rows:
        if not (r["stage"] == "main" and r["setting"] == setting and r["seed"] == seed and r["objective"] == "pgd"
                and r["method"] not in ("full", "full_stopped")):
            continue
        m = label(r)
        if m in done: continue
        fit = [c for c in full["curve"] if c["cpu_seconds"] <= r["seconds"]]
        row = {"stage": "main", "setting": setting, "seed": seed, "objective": "pgd", "method": "full_stopped",
               "fraction": 1.0, "bullettrain": None, "matched": m, "target_seconds": r["seconds"]}
        if not fit:
            row.update(epoch=0, note="the pruned run cost less than one epoch of full PGD-AT")
        elif fit[-1]["step"] not in ckpts:
            row.update(epoch=fit[-1]["epoch"], note=f"checkpoint of epoch {fit[-1]['epoch']} missing in {full['run']}")
        else:
            c = fit[-1]
            model = cfg["model"](seed)
            load_checkpoint(ckpts[c["step"]], {"model": model}, restore_rng=False)
            ev = evaluate_robustness(model.to(a.device or "cpu"), test, eps=cfg["eps"], pgd_steps=20, batch_size=256)
            row.update(epoch=c["epoch"], seconds=c["cpu_seconds"], wall_seconds=c["seconds"], clean_acc=ev["clean_acc"],
                       pgd20_acc=ev["pgd20_acc"], evaluated_on="test")
        out.append(row)
    return out


def label(r) -> str:
    return f"{r['objective']} {r['method']} {r['fraction']:g}" + (f" +BT({r['bullettrain']})" if r["bullettrain"] else "")


# --- tuning on the validation split --------------------------------------------------------------------------------
def tuned(rows, setting) -> dict:
    "The schedule, R and warm fraction chosen on the validation split (defaults when no tune rows exist)."
    t = [r for r in rows if r["stage"] == "tune" and r["setting"] == setting]
    full = [r for r in t if r["method"] == "full"]
    gm = [r for r in t if r["method"] == "gradmatch"]
    out = {"schedule": "cosine", "every": 2, "warm_frac": 0.1, "tuned": False}
    if full: out["schedule"] = max(full, key=lambda r: r["pgd20_acc"])["schedule"]
    if gm:
        b = max(gm, key=lambda r: r["pgd20_acc"])
        out.update(every=b["every"], warm_frac=b["warm_frac"], tuned=True)
    return out


def run_tune(rows, a, path):
    for setting in a.settings:
        cfg = settings(a)[setting]
        for sched in ("cosine", "step"):
            r = {"stage": "tune", "setting": setting, "seed": 0, "objective": "pgd", "method": "full", "fraction": 1.0,
                 "bullettrain": None, "schedule": sched, "every": None, "warm": None}
            if key(r) in {key(x) for x in rows}: continue
            append(rows, path, train(setting, cfg, a, 0, "pgd", "full", 1.0, None, schedule=sched, every=2, warm_frac=0,
                                     stage="tune"))
        sched = tuned(rows, setting)["schedule"]
        for every, wf in itertools.product(*(((1, 2), (0.1,)) if a.smoke else ((1, 2, 4), (0.1, 0.2)))):
            warm = max(0, min(a.epochs - 1, round(wf * a.epochs)))
            r = {"stage": "tune", "setting": setting, "seed": 0, "objective": "pgd", "method": "gradmatch", "fraction": 0.3,
                 "bullettrain": None, "schedule": sched, "every": every, "warm": warm}
            if key(r) in {key(x) for x in rows}: continue
            out = train(setting, cfg, a, 0, "pgd", "gradmatch", 0.3, None, schedule=sched, every=every, warm_frac=wf, stage="tune")
            append(rows, path, {**out, "warm_frac": wf})


# --- the rows file -------------------------------------------------------------------------------------------------
def load_rows(path: Path) -> list[dict]: return Rows(path).rows


def append(rows, path: Path, row: dict):
    rows.append(row)
    Rows(path).add(row)
    print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)


# --- aggregation ---------------------------------------------------------------------------------------------------
def _ms(xs):
    xs = [x for x in xs if x is not None]
    if not xs: return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def groups(rows, setting) -> dict:
    "Mean and std over seeds of each main row (objective, method, fraction, rule)."
    out = {}
    main = [r for r in rows if r["stage"] == "main" and r["setting"] == setting and r["method"] != "full_stopped"]
    for r in main: out.setdefault((r["objective"], r["method"], r["fraction"], r["bullettrain"]), []).append(r)
    agg = {}
    for k, rs in out.items():
        g = {"objective": k[0], "method": k[1], "fraction": k[2], "bullettrain": k[3], "seeds": sorted(r["seed"] for r in rs)}
        for f in ("clean_acc", "pgd20_acc", "seconds", "wall_seconds", "seconds_select"):
            g[f], g[f + "_std"] = _ms([r.get(f) for r in rs])
        agg[k] = g
    return agg


def summarize(rows, setting, a) -> dict:
    agg = groups(rows, setting)
    if not agg: return {}
    for obj in ("pgd", "trades", "mart"):
        full = agg.get((obj, "full", 1.0, None))
        if not full: continue
        for g in agg.values():
            if g["objective"] == obj or (obj == "pgd" and g["objective"] == "fast"):
                g["speedup"] = full["seconds"] / g["seconds"]
                g["speedup_wall"] = full["wall_seconds"] / g["wall_seconds"]
                g["robust_acc_drop"] = 100 * (full["pgd20_acc"] - g["pgd20_acc"])

    def best(obj, rule):
        c = [g for g in agg.values() if g["objective"] == obj and g["bullettrain"] == rule and "speedup" in g
             and not (g["method"] == "full" and rule is None)]
        if not c: return None
        ok = [g for g in c if g["robust_acc_drop"] <= 1.0]
        b = max(ok, key=lambda g: g["speedup"]) if ok else min(c, key=lambda g: g["robust_acc_drop"])
        return {"speedup": b["speedup"], "robust_acc_drop": b["robust_acc_drop"], "within_1_point": bool(ok), "row": label(b),
                "seeds": len(b["seeds"])}

    summary = {f"{o}{' +BT(' + r + ')' if r else ''}": best(o, r) for o in ("pgd", "trades", "mart") for r in (None, "paper", "fixed")}
    summary = {k: v for k, v in summary.items() if v}
    fast = agg.get(("fast", "full", 1.0, None))
    pruned = [g for g in agg.values() if g["objective"] == "pgd" and g["method"] != "full"]
    vs_fast = None
    if fast and pruned:
        cheap = [g for g in pruned if g["seconds"] <= fast["seconds"]]
        if cheap:
            b = max(cheap, key=lambda g: g["pgd20_acc"])
            vs_fast = {"points": 100 * (b["pgd20_acc"] - fast["pgd20_acc"]), "row": label(b), "row_seconds": b["seconds"],
                       "fast_seconds": fast["seconds"]}
        else:
            b = min(pruned, key=lambda g: g["seconds"])
            vs_fast = {"points": None, "note": f"no pruned row costs as little as Fast AT ({fast['seconds']:.0f} s); the "
                       f"cheapest, {label(b)} ({b['seconds']:.0f} s), is {100 * (b['pgd20_acc'] - fast['pgd20_acc']):+.1f} "
                       f"PGD-20 points from it"}
    gvr = {}
    for f in a.fractions:
        gm = {r["seed"]: r for r in rows if r["stage"] == "main" and r["setting"] == setting and r["objective"] == "pgd"
              and r["method"] == "gradmatch" and r["fraction"] == f and r["bullettrain"] is None}
        rd = {r["seed"]: r for r in rows if r["stage"] == "main" and r["setting"] == setting and r["objective"] == "pgd"
              and r["method"] == "random" and r["fraction"] == f and r["bullettrain"] is None}
        d = [100 * (gm[s]["pgd20_acc"] - rd[s]["pgd20_acc"]) for s in sorted(gm.keys() & rd.keys())]
        if d: gvr[str(f)] = {"points": statistics.fmean(d), "std": statistics.stdev(d) if len(d) > 1 else 0.0, "seeds": len(d)}
    stopped = {}
    for r in rows:
        if r["setting"] == setting and r["method"] == "full_stopped" and "pgd20_acc" in r:
            stopped.setdefault(r["matched"], []).append(r)
    early = []
    for m, rs in stopped.items():
        g = next((g for g in pruned if label(g) == m), None)
        e = {"matched": m, "epochs": [r["epoch"] for r in rs]}
        for f in ("clean_acc", "pgd20_acc", "seconds"): e[f], e[f + "_std"] = _ms([r.get(f) for r in rs])
        if g: e["pruned_minus_stopped_points"] = 100 * (g["pgd20_acc"] - e["pgd20_acc"])
        early.append(e)
    conv = [dict(seed=r["seed"], **convergence(r["curve"], a.conv_tol)) for r in rows
            if r["stage"] == "main" and r["setting"] == setting and r["objective"] == "pgd" and r["method"] == "full"
            and r["bullettrain"] is None and r.get("curve")]
    fa = None if not fast else {k: fast[k] for k in ("clean_acc", "pgd20_acc", "seconds", "clean_acc_std", "pgd20_acc_std",
                                                     "seconds_std", "wall_seconds")}
    full = agg.get(("pgd", "full", 1.0, None))
    return {"rows": list(agg.values()), "summary": summary, "fast_at": fa, "vs_fast_at": vs_fast,
            "gradmatch_vs_random": gvr, "early_stopped": early, "convergence": conv, "tuned": tuned(rows, setting),
            "full": None if not full else {k: full[k] for k in ("clean_acc", "pgd20_acc", "seconds", "pgd20_acc_std")},
            "seeds": sorted({r["seed"] for r in rows if r["setting"] == setting and r["stage"] == "main"})}


def report(rows, a, name, extra=None):
    res = {"protocol": "issue 13", "epochs": a.epochs, "seeds": a.seeds, "settings": {}, "paper": PAPER,
           "config": {"epochs": a.epochs, "val_fraction": a.val_fraction, "lr": a.lr, "fast_lr": a.fast_lr, "fractions": a.fractions,
                      "strategies": a.strategies, "conv_tol_points": a.conv_tol, "eval": "PGD-20 step eps/4",
                      "bullettrain": "paper rule: robust_share 0.4, outlier_share 0.1, warmup 1 epoch; fixed rule: "
                                     "robust_margin 0.5, outliers unattacked"},
           "machine": machine(1), **(extra or {})}
    cfgs = settings(a)
    for s in a.settings:
        block = summarize(rows, s, a)
        if not block: continue
        pool, val, test = data(s, cfgs[s], a)
        block.update(dataset=f"{s} ({len(pool)} train / {len(val)} validation / {len(test)} test images)",
                     model=f"{cfgs[s]['model_name']}, {count_params(cfgs[s]['model'](0))} parameters",
                     eps=cfgs[s]["eps"], attack=f"PGD-{cfgs[s]['steps']} step {cfgs[s]['alpha']:.4g}")
        ref = next((r for r in rows if r["stage"] == "reference" and r["setting"] == s), None)
        if ref: block["reference"] = {k: ref[k] for k in ("model", "clean_acc", "pgd20_acc")}
        res["settings"][s] = block
    if not res["settings"]:
        raise SystemExit(f"no main rows for {a.settings} in {RESULTS / (name + '.jsonl')}: nothing to report "
                         f"(bench/results/{name}.json is left as it is)")
    c = res["settings"].get("cifar10") or next(iter(res["settings"].values()), {})
    sm = c.get("summary", {})
    g = lambda k, f: (sm.get(k) or {}).get(f)
    res.update(speedup=g("pgd", "speedup"), robust_acc_drop=g("pgd", "robust_acc_drop"),
               speedup_bullettrain=g("pgd +BT(paper)", "speedup"), robust_acc_drop_bullettrain=g("pgd +BT(paper)", "robust_acc_drop"),
               speedup_trades=g("trades", "speedup"), speedup_trades_bullettrain=g("trades +BT(paper)", "speedup"),
               fast_at=c.get("fast_at"), vs_fast_at=c.get("vs_fast_at"), gradmatch_vs_random=c.get("gradmatch_vs_random"),
               full=c.get("full"), summary=sm, dataset=c.get("dataset"), model=c.get("model"), rows=c.get("rows", []),
               pgd_vs_torchattacks=(res.get("torchattacks") or {}).get("pgd_vs_torchattacks"))
    table = []
    for s, b in res["settings"].items():
        conv = b["convergence"]
        for gr in b["rows"]:
            table.append({"setting": s, "row": label(gr), "seeds": len(gr["seeds"]),
                          "clean %": _pm(gr["clean_acc"], gr["clean_acc_std"]), "PGD-20 %": _pm(gr["pgd20_acc"], gr["pgd20_acc_std"]),
                          "CPU s": gr["seconds"], "wall s": gr["wall_seconds"], "select s": gr["seconds_select"],
                          "speed-up": gr.get("speedup"), "PGD drop (pts)": gr.get("robust_acc_drop")})
        for e in b["early_stopped"]:
            table.append({"setting": s, "row": f"full PGD-AT stopped at [{e['matched']}]'s time", "seeds": len(e["epochs"]),
                          "clean %": _pm(e["clean_acc"], e["clean_acc_std"]), "PGD-20 %": _pm(e["pgd20_acc"], e["pgd20_acc_std"]),
                          "CPU s": e["seconds"], "wall s": None, "select s": None, "speed-up": None,
                          "PGD drop (pts)": None})
    notes = [f"Mean ± std over seeds {a.seeds}; {a.epochs} epochs for every row. Speed-up = mean CPU time of the full "
             f"run of the same objective / the row's (one torch thread, selection counted, evaluation not); Fast AT is "
             f"set against full PGD-AT. PGD drop = full PGD-AT's mean PGD-20 minus the row's, in points."]
    for s, b in res["settings"].items():
        conv = b["convergence"]
        cs = "; ".join(f"seed {c['seed']}: {'converged' if c['converged'] else 'NOT converged'} (best validation PGD-20 "
                       f"{c['val_pgd20_best']:.1f} %, " + (c["note"] if c.get("note") else
                       f"reached within {a.conv_tol} pt at epoch {c['converged_epoch']}") + ")" for c in conv)
        notes.append(f"**{s}** ({b['dataset']}, {b['model']}): full PGD-AT convergence on the validation split: {cs or 'no curve'}. "
                     f"Tuned on validation: {b['tuned']}. Headline (best row within 1 PGD-20 point, else smallest drop): "
                     f"{_s(b['summary'])}. Fast AT: {_fa(b['fast_at'])}; best pruned row at no more time minus Fast AT: "
                     f"{_vf(b['vs_fast_at'])}. GRAD-MATCH minus random (PGD-20 points, same fraction, paired by seed): "
                     f"{ {k: round(v['points'], 2) for k, v in b['gradmatch_vs_random'].items()} }."
                     + (f" Reference: {b['reference']}." if b.get("reference") else ""))
    notes.append(f"Paper: {PAPER['speedup']}x at similar robust accuracy, {PAPER['speedup_bullettrain']}x with BulletTrain "
                 f"(TRADES). Goal: >= 3.44x at <= 1 point PGD-20 drop (mean of 3 seeds), 5.66x with BulletTrain, pruning "
                 f"ahead of Fast AT at equal time.")
    if extra and extra.get("torchattacks"): notes.append(f"Our PGD vs torchattacks: {extra['torchattacks']}.")
    write(name, res, f"Data pruning for faster adversarial training (issue 13 protocol){' — SMOKE RUN, not a result' if a.smoke else ''}",
          table, "\n\n".join(notes))
    return res


def _pm(m, s): return None if m is None else f"{100 * m:.2f} ± {100 * (s or 0):.2f}"
def _s(sm): return "; ".join(f"{k}: {v['speedup']:.2f}x ({v['row']}, drop {v['robust_acc_drop']:.1f} pts"
                             f"{'' if v['within_1_point'] else ', none within 1 point'})" for k, v in sm.items()) or "none"
def _fa(f): return "not run" if not f else f"clean {100 * f['clean_acc']:.1f} %, PGD-20 {100 * f['pgd20_acc']:.1f} %, {f['seconds']:.0f} CPU s"
def _vf(v): return "n/a" if not v else (f"{v['points']:+.1f} points ({v['row']})" if v.get("points") is not None else v["note"])


def pgd_vs_torchattacks(n: int = 512, repeat: int = 3) -> dict | None:
    "Our PGD-10 vs torchattacks' PGD-10 (eps 8/255, step 2/255, random start), same model and images, CPU time."
    try:
        import torchattacks
    except ImportError:
        return {"pgd_vs_torchattacks": None, "note": "torchattacks not installed (pip install torchattacks --no-deps)"}
    from effdata.attacks import PGD
    test = load_dataset("cifar10", "test")
    x, y = test.images[:n].float() / 255, test.targets[:n]
    m = PreActResNet18(width=16).eval()
    ours, theirs = PGD(8 / 255, 2 / 255, 10), torchattacks.PGD(m, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)
    t_o, t_t = [], []
    for _ in range(repeat):
        t0 = time.process_time(); ours(m, x, y); t_o.append(time.process_time() - t0)
        t0 = time.process_time(); theirs(x, y); t_t.append(time.process_time() - t0)
    return {"pgd_vs_torchattacks": min(t_t) / min(t_o), "seconds_ours": min(t_o), "seconds_torchattacks": min(t_t), "images": n}


def calibrate(a, batches: int = 3) -> dict:
    "CPU seconds per training image of one PGD-AT step (batch 128, one thread) with each setting's full-size model."
    from effdata.attacks import PGD
    out = {}
    big = argparse.Namespace(**{**vars(a), "cifar_width": 16})
    for s, cfg in settings(big).items():
        if s not in a.settings: continue
        pool, _, _ = data(s, cfg, a)
        m = cfg["model"](0); opt = torch.optim.SGD(m.parameters(), lr=0.01)
        atk = PGD(cfg["eps"], cfg["alpha"], cfg["steps"])
        x = pool.images[:128].float() / 255; y = pool.targets[:128]
        ts = []
        for i in range(batches + 1):
            t0 = time.process_time()
            m.train(); xa = atk(m, x, y)
            loss = torch.nn.functional.cross_entropy(m(xa), y); opt.zero_grad(); loss.backward(); opt.step()
            if i: ts.append((time.process_time() - t0) / len(x))
        out[s] = {"model": cfg["model_name"], "cpu_s_per_image": statistics.median(ts), "batches": batches}
    return out


def cost_estimate(rows, a, cal: dict) -> dict:
    "The full protocol's CPU cost: calibrated full-size PGD-AT throughput x the plan's cost in full-run equivalents."
    out = {}
    for s in a.settings:
        main = [r for r in rows if r["stage"] == "main" and r["setting"] == s and r.get("seconds") and r["method"] != "full_stopped"]
        full = [r for r in main if r["objective"] == "pgd" and r["method"] == "full" and r["bullettrain"] is None]
        if not full or s not in cal: continue
        seeds = len({r["seed"] for r in main})
        equiv = sum(r["seconds"] for r in main) / statistics.fmean(r["seconds"] for r in full) / seeds
        n = {"cifar10": 8152, "mnist": 17435}[s] * (1 - a.val_fraction)
        epoch = cal[s]["cpu_s_per_image"] * n
        out[s] = {**cal[s], "train_images": round(n), "full_pgd_epoch_cpu_s": epoch,
                  "plan_in_full_pgd_run_equivalents": equiv,
                  "cpu_days_30_epochs_3_seeds": epoch * 30 * 3 * equiv / 86400,
                  "note": "plan cost ratios from the smoke rows (tiny models: selection weighs more there than at full size)"}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="+", default=["cifar10", "mnist"], choices=["cifar10", "mnist"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    ap.add_argument("--cifar-n", type=int, default=8152)
    ap.add_argument("--mnist-n", type=int, default=17435)
    ap.add_argument("--cifar-width", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--fast-lr", type=float, default=0.2, help="Fast AT's peak learning rate (cyclic schedule)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--conv-tol", type=float, default=1.0, help="points of validation PGD-20")
    ap.add_argument("--eval-limit", type=int, default=None, help="test images per setting (default: all)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--workdir", default=str(Path.home() / ".cache" / "effdata" / "at_pruning"))
    ap.add_argument("--name", default="at_pruning", help="result name under bench/results")
    ap.add_argument("--tune", action="store_true", help="run the validation-split tuning rows first")
    ap.add_argument("--report", action="store_true", help="only rewrite the JSON + MD from the rows file")
    ap.add_argument("--smoke", action="store_true", help="tiny end-to-end run -> bench/results/at_pruning_smoke.*")
    a = ap.parse_args()
    if a.smoke:
        a.name, a.epochs, a.seeds, a.cifar_n, a.mnist_n, a.cifar_width = "at_pruning_smoke", 3, [0, 1], 160, 160, 4
        a.eval_limit, a.fractions = 100, [0.3]
        if a.workdir == ap.get_default("workdir"): a.workdir = "/tmp/effdata_at_pruning_smoke"
        a.tune = True
    torch.set_num_threads(1)
    path = RESULTS / f"{a.name}.jsonl"
    rows = load_rows(path)
    cfgs = settings(a)
    t_start = time.process_time()
    if not a.report:
        if a.tune:
            ep = a.epochs
            run_tune(rows, a, path)
            a.epochs = ep
        for s in a.settings:
            cfg = cfgs[s]
            if s == "mnist" and not any(r["stage"] == "reference" and r["setting"] == s for r in rows):
                _, _, test = data(s, cfg, a)
                ev = evaluate_robustness(pretrained("mnist_lenet5_robust", device=a.device), test, eps=0.3, pgd_steps=20)
                append(rows, path, {"stage": "reference", "setting": s, "seed": None, "objective": "pgd", "method": "zoo",
                                    "fraction": 1.0, "bullettrain": None, "model": "mnist_lenet5_robust", **ev})
            tu = tuned(rows, s)
            for seed in a.seeds:
                for obj, method, frac, bt in plan(a.fractions, a.strategies):
                    r = {"stage": "main", "setting": s, "seed": seed, "objective": obj, "method": method, "fraction": frac,
                         "bullettrain": bt}
                    if any(key(x)[:7] == key(r)[:7] for x in rows): continue
                    full = obj == "pgd" and method == "full" and bt is None
                    append(rows, path, train(s, cfg, a, seed, obj, method, frac, bt, schedule=tu["schedule"], every=tu["every"],
                                             warm_frac=tu["warm_frac"], eval_val=full, keep_all=full))
                for row in stopped_rows(rows, s, cfg, a, seed): append(rows, path, row)
    extra = {"torchattacks": pgd_vs_torchattacks()}
    prev = RESULTS / f"{a.name}.json"
    if a.report and prev.exists():   # keep what only a training invocation measures
        old = json.loads(prev.read_text())
        extra.update({k: old[k] for k in ("smoke", "cost_estimate") if k in old})
    elif a.smoke:
        extra["cost_estimate"] = cost_estimate(rows, a, calibrate(a))
        extra["smoke"] = {"note": "a check that the pipeline runs end to end on tiny data (160 images per setting, 3 epochs, "
                                  "2 seeds, PreActResNet18 width 4, 100 test images): NOT a measurement of the method",
                          "process_cpu_seconds_this_invocation": time.process_time() - t_start}
    report(rows, a, a.name, extra)
    print((RESULTS / f"{a.name}.md").read_text())


if __name__ == "__main__":
    main()
