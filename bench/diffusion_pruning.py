"""Pruning then reweighting for diffusion training, on CPU with real data (scikit-learn's 8x8 digits).

Runs: full data; random p; Gaussian p; Gaussian p + DRO class weights; p in {0.2, 0.3, 0.5}. Every run trains the same
small U-Net for up to the full run's number of steps, with FD measured every `eval_every` steps (samples from the EMA
U-Net, features of a digits classifier trained here). Speed-up at matched quality = seconds of the full run / seconds a
coreset run needs to reach the full run's final FD within 5 % (selection, DRO proxy and, in the second figure, the
reference DM counted). The reference DM of the DRO is the full-data run itself, so "with reference" adds its whole cost.

    EFFDATA_DATA=../shared/data python bench/diffusion_pruning.py [--threads 2] [--seeds 0]

Writes bench/results/diffusion_pruning.json and .md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write  # noqa: E402
from generative_baseline import feature_net  # noqa: E402

S = dict(dataset="digits", config="digits_small", block_out_channels=(32, 64), attention_resolutions=(4,), lr=1e-3,
         warmup_steps=50, batch_size=64, steps=300, eval_every=75, n_samples=500, sample_steps=20, fractions=[0.2, 0.3, 0.5],
         surrogate="pixels", score="gaussian", dro_steps=100, dro_step_size=1.0, dro_smoothing=1e-3, match_tolerance=0.05)


def train_with_evals(train, cfg, sel, seed, real_feats, clf, run_dir):
    "Train `S['steps']` steps, pausing every `eval_every` to sample and score; returns the curve and training seconds."
    from effdata.diffusion import DDPMTrainer, sample
    from effdata.metrics import frechet_distance, precision_recall
    curve, train_s = [], 0.0
    for stop in range(S["eval_every"], S["steps"] + 1, S["eval_every"]):
        t0 = time.perf_counter()
        tr = DDPMTrainer(train, cfg, selection=sel, steps=S["steps"], batch_size=S["batch_size"], seed=seed, progress=False,
                         run=run_dir, resume=stop > S["eval_every"], ckpt_every=10**9)
        tr.fit(max_steps=stop)
        train_s += time.perf_counter() - t0
        fake = sample(tr.ema, cfg, S["n_samples"], steps=S["sample_steps"], seed=1000 + seed)
        with torch.no_grad(): ff = clf.features(fake)
        sc = {"fd": frechet_distance(real_feats, ff), **precision_recall(real_feats, ff)}
        curve.append({"step": stop, "seconds": train_s, "fd": sc["fd"], "precision": sc["precision"], "recall": sc["recall"]})
        print(f"  step {stop}: FD {sc['fd']:.3f} after {train_s:.1f} s", flush=True)
    from effdata.metrics import class_histogram
    hist = class_histogram(fake, clf, 10).tolist()
    return curve, train_s, hist


def summarise(res: dict):
    "Speed-ups at matched FD from the rows (wall-clock, as specified, and per optimisation step), then write the files."
    rows, S_ = res["rows"], res["settings"]
    full = [r for r in rows if r["method"] == "full"]
    fd_full = float(np.mean([r["fd"] for r in full])); t_full = float(np.mean([r["seconds_final"] for r in full]))
    sec_per_step = t_full / S_["steps"]
    def best(with_ref, per_step):
        out = []
        for r in rows:
            if r["method"] == "full": continue
            hit = next((c for c in r["curve"] if c["fd"] <= fd_full * (1 + S_["match_tolerance"])), None)
            if hit is None: continue
            train = hit["step"] * sec_per_step if per_step else hit["seconds"]
            cost = train + r["seconds_selection"] + r["seconds_proxy"] + (r["seconds_reference"] if with_ref else 0)
            out.append((t_full / cost, r["method"], r["fraction"], r["seed"]))
        return max(out) if out else (None, None, None, None)
    b, br, bs = best(False, False), best(True, False), best(False, True)
    res.update(fd_full=fd_full, seconds_full=t_full, speedup_at_matched_fd=b[0],
               speedup_best=dict(method=b[1], fraction=b[2], seed=b[3]), speedup_at_matched_fd_with_reference=br[0],
               speedup_at_matched_fd_step_normalised=bs[0], speedup_step_normalised_best=dict(method=bs[1], fraction=bs[2]),
               note="reference DM = the full-data run, so 'with reference' adds its whole cost. Wall-clock figures come from "
                    "one shared 2-core machine (other jobs ran beside it); the step-normalised figure prices every run's "
                    "training steps at the full run's seconds per step. A row whose FD never came within 5 % of the full "
                    "run's final FD inside the full run's step budget has seconds_to_match null.")
    r2 = lambda v: None if v is None else round(v, 2)
    table = [{"method": r["method"], "p": r["fraction"], "seed": r["seed"], "FD": r["fd"], "precision": r["precision"],
              "recall": r["recall"], "s train": r["seconds_final"], "s to match": r.get("seconds_to_match"),
              "s sel+proxy": r["seconds_selection"] + r["seconds_proxy"]} for r in rows]
    write("diffusion_pruning", res, "Pruning then reweighting: DDPM on the digits (CPU)", table,
          f"Full-data FD {fd_full:.3f} after {S_['steps']} steps ({t_full:.1f} s). Speed-up at matched FD (FD <= 1.05 x full), "
          f"best row, reference not counted: {r2(b[0])} ({b[1]}, p={b[2]}); counting the reference DM: {r2(br[0])}; "
          f"step-normalised: {r2(bs[0])} ({bs[1]}, p={bs[2]}). 's to match' is training seconds until FD <= 1.05 x full "
          f"(None: not reached within {S_['steps']} steps).")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--report", action="store_true", help="only recompute the summary from results/diffusion_pruning.json")
    args = ap.parse_args()
    if args.report:
        import json
        summarise(json.loads((Path(__file__).parent / "results" / "diffusion_pruning.json").read_text()))
        print(open(Path(__file__).parent / "results" / "diffusion_pruning.md").read()); return
    torch.set_num_threads(args.threads)
    from effdata.data import Selection, load_dataset
    from effdata.diffusion import get_config
    from effdata.reweighting import reweight
    from effdata.selection import coreset, random_scores, select
    train, test = load_dataset(S["dataset"]), load_dataset(S["dataset"], "test")
    clf, clf_acc = feature_net(train, test)
    clf.requires_grad_(False)
    with torch.no_grad(): real_feats = clf.features(train.tensors()[0])
    cfg = get_config(S["config"], block_out_channels=S["block_out_channels"], attention_resolutions=S["attention_resolutions"],
                     lr=S["lr"], warmup_steps=S["warmup_steps"])
    rows, curves = [], {}
    tmp = Path(tempfile.mkdtemp())
    for seed in args.seeds:
        print(f"full data, seed {seed}", flush=True)
        curve, t_full, hist = train_with_evals(train, cfg, None, seed, real_feats, clf, tmp / f"full{seed}")
        fd_full = curve[-1]["fd"]
        rows.append(dict(method="full", fraction=1.0, seed=seed, fd=fd_full, precision=curve[-1]["precision"],
                         recall=curve[-1]["recall"], class_counts=hist, seconds_selection=0.0, seconds_reference=0.0,
                         seconds_proxy=0.0, seconds_final=t_full, curve=curve))
        for p in S["fractions"]:
            t0 = time.perf_counter()
            gauss = coreset(train, p, score=S["score"], encoder=S["surrogate"], seed=seed, progress=False)
            t_sel = time.perf_counter() - t0
            rnd = select(random_scores(len(train), seed), p, train.targets, seed=seed, info={"method": "random"})
            t0 = time.perf_counter()
            cw = reweight(train, tmp / f"full{seed}", cfg, selection=gauss, steps=S["dro_steps"], batch_size=S["batch_size"],
                          step_size=S["dro_step_size"], smoothing=S["dro_smoothing"], seed=seed, progress=False)
            t_proxy = time.perf_counter() - t0
            for method, sel, ts, tp in (("random", rnd, 0.0, 0.0), ("gaussian", gauss, t_sel, 0.0),
                                        ("gaussian+dro", cw.apply(gauss, train.targets), t_sel, t_proxy)):
                print(f"{method} {p}, seed {seed}", flush=True)
                curve, t_fin, hist = train_with_evals(train, cfg, sel, seed, real_feats, clf, tmp / f"{method}{p}{seed}")
                hit = next((c for c in curve if c["fd"] <= fd_full * (1 + S["match_tolerance"])), None)
                rows.append(dict(method=method, fraction=p, seed=seed, fd=curve[-1]["fd"], precision=curve[-1]["precision"],
                                 recall=curve[-1]["recall"], class_counts=hist, seconds_selection=ts,
                                 seconds_reference=t_full if method == "gaussian+dro" else 0.0, seconds_proxy=tp,
                                 seconds_final=t_fin, seconds_to_match=None if hit is None else hit["seconds"],
                                 class_weights=cw.weights.round(4).tolist() if method == "gaussian+dro" else None, curve=curve))
    summarise(dict(dataset=S["dataset"], settings=S, machine=machine(args.threads), feature_classifier_test_acc=clf_acc,
                   rows=rows))
    print(open(Path(__file__).parent / "results" / "diffusion_pruning.md").read())


if __name__ == "__main__":
    main()
