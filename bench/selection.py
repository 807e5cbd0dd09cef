"""Selection benchmark: scoring cost at scale against scikit-learn, the CIFAR-10 subset end to end, and a first
generative baseline (full data vs random 30 % vs Gaussian 30 % coreset, same epochs).

    EFFDATA_DATA=../shared/data python bench/selection.py [--part scoring|generative|all] [--threads 2]

Writes bench/results/selection.json and selection.md. Ratios are measured side by side in this run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, write  # noqa: E402


def synthetic(n: int, d: int = 2048, k: int = 10, seed: int = 0):
    "Class-structured float32 features: per-class means plus correlated noise (a random low-rank mix)."
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    means = torch.randn(k, d, generator=g) * 2
    mix = torch.randn(64, d, generator=g) / 8
    x = means[y] + torch.randn(n, d, generator=g) * 0.5 + torch.randn(n, 64, generator=g) @ mix
    return x.numpy(), y.numpy()


def sk_gaussian(x, y):
    from sklearn.mixture import GaussianMixture
    out = np.empty(len(x))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        xc = x[idx].astype(np.float64)
        out[idx] = GaussianMixture(1, covariance_type="full", reg_covar=1e-5, max_iter=1).fit(xc).score_samples(xc)
    return out


def sk_knn(x, y, k=5):
    from sklearn.neighbors import NearestNeighbors
    out = np.empty(len(x))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out[idx] = -NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x[idx]).kneighbors(x[idx])[0][:, k]
    return out


def timed(fn, *a, **kw):
    t0 = time.perf_counter(); r = fn(*a, **kw); return r, time.perf_counter() - t0


def scoring(res, rows):
    from effdata.selection import gaussian_scores, knn_scores
    res["scoring"] = []
    import warnings
    warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")   # one EM step on purpose (1 component: exact)
    from sklearn.exceptions import ConvergenceWarning
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    # classes are sized so each has more samples than dimensions (a full covariance exists): 10k -> 4 classes, 50k -> 10
    for n, k in ((10_000, 4), (50_000, 10)):
        x, y = synthetic(n, k=k)
        g, tg = timed(gaussian_scores, x, y)
        kn, tk = timed(knn_scores, x, y, k=5)
        sg, tsg = timed(sk_gaussian, x, y)
        sk, tsk = timed(sk_knn, x, y)
        agree_g = float(np.corrcoef(g, sg)[0, 1]); agree_k = float(np.corrcoef(kn, sk)[0, 1])
        r = {"n": n, "d": 2048, "classes": k, "ours_gaussian_s": tg, "ours_knn_s": tk, "sklearn_gaussian_s": tsg, "sklearn_knn_s": tsk,
             "ours_total_s": tg + tk, "sklearn_total_s": tsg + tsk, "time_ratio_ours_over_sklearn": (tg + tk) / (tsg + tsk),
             "corr_gaussian": agree_g, "corr_knn": agree_k}
        res["scoring"].append(r)
        for what, a, b, c in (("Gaussian", tg, tsg, agree_g), ("kNN (k=5)", tk, tsk, agree_k)):
            rows.append({"what": f"{what} scoring, {n} x 2048, {k} classes", "ours s": a, "scikit-learn s": b,
                         "ours/sklearn": a / b, "note": f"score correlation {c:.5f}"})
        rows.append({"what": f"Gaussian + kNN scoring, {n} x 2048", "ours s": tg + tk, "scikit-learn s": tsg + tsk,
                     "ours/sklearn": (tg + tk) / (tsg + tsk), "note": ""})
        print(rows[-1], flush=True)
    big = res["scoring"][-1]
    res["scoring_seconds_50k"] = big["ours_total_s"]
    res["sklearn_time_ratio"] = big["time_ratio_ours_over_sklearn"]

    # CIFAR-10 subset end to end: zoo CNN features + Gaussian score + 30 % cut
    from effdata.data import load_dataset
    from effdata.selection import coreset
    ds = load_dataset("cifar10")
    sel, t = timed(coreset, ds, 0.3, score="gaussian", encoder="cifar10_cnn", progress=False)
    res["cifar10_subset_end_to_end"] = {"images": len(ds), "seconds_features": sel.info["seconds_features"],
                                        "seconds_scoring": sel.info["seconds_scoring"], "seconds_total": t, "kept": len(sel)}
    rows.append({"what": f"CIFAR-10 subset ({len(ds)} images) end to end: cifar10_cnn features + Gaussian + cut",
                 "ours s": t, "scikit-learn s": "", "ours/sklearn": "",
                 "note": f"features {sel.info['seconds_features']:.1f} s, scoring {sel.info['seconds_scoring']:.2f} s"})


def table_rows(res) -> list[dict]:
    "The Markdown table, from everything in the JSON (both parts, whichever ran last)."
    rows = []
    for r in res.get("scoring", []):
        for what, a, b, c in (("Gaussian", "ours_gaussian_s", "sklearn_gaussian_s", "corr_gaussian"),
                              ("kNN (k=5)", "ours_knn_s", "sklearn_knn_s", "corr_knn")):
            rows.append({"what": f"{what} scoring, {r['n']} x {r['d']}, {r['classes']} classes", "ours s": r[a],
                         "scikit-learn s": r[b], "ours/sklearn": r[a] / r[b], "note": f"score correlation {r[c]:.5f}"})
        rows.append({"what": f"Gaussian + kNN, {r['n']} x {r['d']}", "ours s": r["ours_total_s"],
                     "scikit-learn s": r["sklearn_total_s"], "ours/sklearn": r["time_ratio_ours_over_sklearn"], "note": ""})
    e = res.get("cifar10_subset_end_to_end")
    if e:
        rows.append({"what": f"CIFAR-10 subset ({e['images']} images): cifar10_cnn features + Gaussian + 30 % cut",
                     "ours s": e["seconds_total"], "scikit-learn s": "", "ours/sklearn": "",
                     "note": f"features {e['seconds_features']:.1f} s, scoring {e['seconds_scoring']:.2f} s"})
    st = res.get("generative_settings", {})
    for r in res.get("generative_baseline", []):
        rows.append({"what": f"DDPM {st.get('dataset')}: {r['method']} {r['fraction']:.0%}, {st.get('epochs')} epochs, seed {r['seed']}",
                     "ours s": r["train_seconds"], "scikit-learn s": "", "ours/sklearn": "",
                     "note": f"FD {r['fd']:.2f}, precision {r['precision']:.2f}, recall {r['recall']:.2f}, "
                             f"class TV {r['class_tv']:.3f}, {r['train_steps']} steps"})
    if st:
        rows.append({"what": "reference: FD of real test vs real train", "ours s": "", "scikit-learn s": "", "ours/sklearn": "",
                     "note": f"FD {st['fd_train_vs_test_real']:.2f} (feature net test accuracy {st['feature_classifier_test_acc']:.1%})"})
    return rows or [{"what": "(nothing measured yet)"}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["scoring", "generative", "all", "report"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import json
    old = RESULTS / "selection.json"
    res = json.loads(old.read_text()) if old.exists() else {}
    if args.part != "report":
        res.setdefault("machines", {})[args.part] = machine(args.threads)
        res["machine"] = machine(args.threads)
    rows = []
    if args.part in ("scoring", "all"):
        scoring(res, rows)
    if args.part in ("generative", "all"):
        from generative_baseline import run as gen_run
        gen_run(res, rows)
    sc = res.get("machines", {}).get("scoring") or res.get("machine", {})
    res["threads"] = sc.get("torch_threads")
    if "generative_settings" in res:
        res["generative_settings"]["threads"] = (res.get("machines", {}).get("generative") or {}).get("torch_threads", 1)
    write("selection", res, "Coreset selection: cost and a first generative baseline", table_rows(res),
          "ours/sklearn < 1 means ours is faster (same features, same run). Gaussian: per-class mean + full "
          "covariance in float64 (sklearn: GaussianMixture, 1 component, full covariance, one EM step); kNN: "
          "5th neighbour within the class (sklearn: NearestNeighbors brute force).")
    print((RESULTS / "selection.md").read_text())


if __name__ == "__main__":
    main()
