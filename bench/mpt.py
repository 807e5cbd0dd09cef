"""Multi-prize lottery tickets benchmark: prune-ratio sweeps (baseline biprop vs ours), packed MPT-1/1 inference vs
dense fp32 PyTorch, and training time (per epoch and to a target accuracy) vs the sort-every-step baseline.

    EFFDATA_DATA=../shared/data python bench/mpt.py [--part sweep|cifar|inference|training|all|report] [--threads 1]

Writes bench/results/mpt.json and mpt.md. Every ratio is measured side by side in one run, threads pinned.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, Rows, machine, timeit, write  # noqa: E402

KEPTS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9]


def sweep_digits(res):
    "Digits MLP (64-256-256-10, MPT-1/32), 10 epochs, 3 seeds, kept 0.02-0.9, baseline vs improved."
    from effdata.data import load_dataset
    from effdata.mpt import sweep
    tr, te = load_dataset("digits"), load_dataset("digits", "test")
    t0 = time.perf_counter()
    rows = sweep("mlp", tr, te, KEPTS, seeds=(0, 1, 2), epochs=10, batch_size=64, lr=0.1, hidden=(256, 256), verbose=True)
    res["sweep"] = [r for r in res.get("sweep", []) if r["dataset"] != "digits"] + rows
    res["sweep_settings"] = res.get("sweep_settings", {})
    res["sweep_settings"]["digits"] = {"model": "mlp 64-256-256-10, MPT-1/32", "epochs": 10, "batch_size": 64, "lr": 0.1,
                                       "optimizer": "sgd cosine", "train": len(tr), "test": len(te), "seeds": [0, 1, 2],
                                       "seconds": time.perf_counter() - t0}


def _cifar(n_train=4096):
    from effdata.data import load_dataset
    full = load_dataset("cifar10")
    g = np.random.default_rng(0)
    return full.subset(np.sort(g.choice(len(full), min(n_train, len(full)), replace=False))), load_dataset("cifar10", "test")


def sweep_cifar(res, n_train=4096, epochs=3, width=0.5):
    "Conv4 (x0.5) on the CIFAR-10 subset: a reduced epoch budget, one seed."
    from effdata.mpt import sweep
    tr, te = _cifar(n_train)
    t0 = time.perf_counter()
    rows = sweep("conv4", tr, te, [0.05, 0.1, 0.3, 0.8], seeds=(0,), epochs=epochs, batch_size=64, lr=0.1, width=width,
                 verbose=True)
    res["sweep"] = [r for r in res.get("sweep", []) if r["dataset"] != "cifar10"] + rows
    res.setdefault("sweep_settings", {})["cifar10"] = {
        "model": f"conv4 x{width}, MPT-1/32", "epochs": epochs, "batch_size": 64, "lr": 0.1, "train": len(tr),
        "test": len(te), "seeds": [0], "augment": False, "seconds": time.perf_counter() - t0}


def ablation(res, epochs=3, width=0.5):
    "CIFAR-10 Conv4 at kept 0.05 (same data and budget as the sweep): 'improved' without the cubic schedule, and with a layer-wise threshold."
    from effdata.mpt import train_mpt
    tr, te = _cifar()
    out = []
    for label, kw in (("improved, no schedule", {"schedule": "none"}), ("improved, layer-wise threshold", {"mode": "layer"})):
        _, r = train_mpt("conv4", tr, te, kept=0.05, variant="improved", epochs=epochs, batch_size=64, lr=0.1, width=width, **kw)
        r["setting"] = label; out.append(r); print({k: r[k] for k in ("setting", "accuracy", "seconds", "layer_kept")}, flush=True)
    res["ablation_cifar10_kept_0.05"] = out
    ablation_digits(res)


def ablation_digits(res):
    "Digits MLP at kept 0.02 (sweep settings, 3 seeds): which part of 'improved' helps at a very low kept fraction."
    from effdata.data import load_dataset
    from effdata.mpt import train_mpt
    tr, te = load_dataset("digits"), load_dataset("digits", "test")
    out = []
    for label, kw in (("improved, no schedule", {"schedule": "none"}), ("improved, layer-wise threshold", {"mode": "layer"}),
                      ("baseline + cubic schedule", {"variant": "baseline", "schedule": "cubic"})):
        kw = {"variant": "improved", **kw}
        accs = [train_mpt("mlp", tr, te, kept=0.02, epochs=10, batch_size=64, lr=0.1, hidden=(256, 256), seed=s, **kw)[1]["accuracy"]
                for s in (0, 1, 2)]
        out.append({"setting": label, "accuracy": float(np.mean(accs)), "accuracies": accs}); print(out[-1], flush=True)
    res["ablation_digits_kept_0.02"] = out


def _timings(fn_dense, pk1, pk2, x, repeat=9) -> dict:
    """Dense PyTorch and packed, at 1 and 2 threads, measured interleaved (one round = each of the four once, so load
    from other jobs hits all four alike): best wall-clock and best process CPU time per call over `repeat` rounds."""
    reps = 20 if len(x) == 1 else 2
    cases = {"dense_1": (fn_dense, 1), "packed_1": (pk1, 1), "dense_2": (fn_dense, 2), "packed_2": (pk2, 2)}
    wall, cpu = {k: [] for k in cases}, {k: [] for k in cases}
    with torch.inference_mode():
        for k, (f, th) in cases.items():                       # warm-up (numba compiles, oneDNN primitives)
            torch.set_num_threads(th); f(x)
        for _ in range(repeat):
            for k, (f, th) in cases.items():
                torch.set_num_threads(th)
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in range(reps): f(x)
                wall[k].append((time.perf_counter() - w0) / reps); cpu[k].append((time.process_time() - c0) / reps)
    torch.set_num_threads(1)
    return {f"{k}_ms": 1e3 * min(v) for k, v in wall.items()} | {f"{k}_cpu_ms": 1e3 * min(v) for k, v in cpu.items()}


def inference(res, threads):
    "Packed MPT-1/1 vs the same network as dense fp32 PyTorch layers (to_dense), whole network, batch 1 and 64, 1 and 2 threads."
    import numba
    from effdata.data import load_dataset
    from effdata.models import CIFAR10_MEAN, CIFAR10_STD
    from effdata.mpt import build, train_mpt
    from effdata.packed import PackedNet, export_packed, to_dense
    out, load0 = [], list(os.getloadavg())
    cifar = load_dataset("cifar10", "test")
    x = cifar.images[:64].float() / 255
    digits_tr, digits_te = load_dataset("digits"), load_dataset("digits", "test")
    mnist_te = load_dataset("mnist", "test")
    nets = []
    # Conv4 x1 (the architecture) with BatchNorm statistics from real images, 30 % kept
    conv = build("conv4", (3, 32, 32), 10, activations="binary", kept=0.3, seed=0, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    with torch.no_grad():
        for i in range(4): conv(cifar.images[64 * i:64 * (i + 1)].float() / 255)
    nets.append(("conv4 x1 (cifar10)", conv, x))
    # a trained MPT-1/1 digits MLP and an MNIST-sized MLP (784-512-512-10)
    mlp, row = train_mpt("mlp", digits_tr, digits_te, kept=0.3, activations="binary", epochs=10, seed=0)
    nets.append(("mlp 64-256-256-10 (digits)", mlp, digits_te.images[:64].float() / 255))
    mn = build("mlp", (1, 28, 28), 10, activations="binary", kept=0.3, hidden=(512, 512), seed=0)
    with torch.no_grad():
        for i in range(4): mn(mnist_te.images[64 * i:64 * (i + 1)].float() / 255)
    nets.append(("mlp 784-512-512-10 (mnist)", mn, mnist_te.images[:64].float() / 255))
    two = min(2, numba.config.NUMBA_NUM_THREADS)
    for name, net, xb in nets:
        net.eval()
        pk1, pk2, dense = PackedNet(net, threads=1), PackedNet(net, threads=two), to_dense(net)
        with torch.no_grad():
            exact = bool(torch.equal(pk1(xb), net(xb))) and bool(torch.equal(pk2(xb), net(xb)))
        info = export_packed(net, RESULTS / "_tmp.packed"); (RESULTS / "_tmp.packed").unlink()
        for bs in (1, 64):
            t = _timings(dense, pk1, pk2, xb[:bs])
            r = {"model": name, "batch": bs, **t,
                 "speedup": t["dense_1_cpu_ms"] / t["packed_1_cpu_ms"], "speedup_wall": t["dense_1_ms"] / t["packed_1_ms"],
                 "speedup_2threads": t["dense_2_ms"] / t["packed_2_ms"], "bit_exact": exact,
                 "dense_fp32_bytes": info["dense_fp32_bytes"], "packed_bytes": info["packed_bytes"],
                 "compression": info["compression"], "weights": info["weights"]}
            if name.startswith("mlp 64"): r["accuracy_float_and_packed"] = row["accuracy"]
            out.append(r); print(r, flush=True)
    res["inference"] = out
    res["inference_load_average"] = {"before": load0, "after": list(os.getloadavg())}   # 1/5/15-minute, 2 cores
    res["inference_measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    head = [r for r in out if r["model"].startswith("conv4")]
    res["inference_speedup_batch1"] = next(r["speedup"] for r in head if r["batch"] == 1)
    res["inference_speedup_batch64"] = next(r["speedup"] for r in head if r["batch"] == 64)
    res["inference_speedup_batch64_2threads"] = next(r["speedup_2threads"] for r in head if r["batch"] == 64)
    res["model_size"] = {r["model"]: {"dense_fp32_bytes": r["dense_fp32_bytes"], "packed_bytes": r["packed_bytes"],
                                      "compression": r["compression"], "weights": r["weights"]} for r in out if r["batch"] == 1}


def _train_timed(arch, tr, te, variant, kept, epochs, target, trainer_kw=None, **kw):
    "Train epoch by epoch; time only the training steps (wall and process CPU); evaluate between epochs (untimed)."
    from effdata.mpt import MPTTrainer, _normalisation, build
    mean, std = _normalisation(tr.name)
    net = build(arch, tr.shape, tr.num_classes, kept=kept, seed=0, mean=mean, std=std, **kw)
    t = MPTTrainer(net, tr, kept=kept, variant=variant, epochs=epochs, batch_size=128, lr=0.1, seed=0, augment=False,
                   progress=False, **(trainer_kw or {}))
    n, spent, spent_cpu, per_epoch, per_epoch_cpu, accs, to_target = len(t.loader), 0.0, 0.0, [], [], [], None
    while t.step < t.total_steps and not t.stopped:
        t0, c0 = time.perf_counter(), time.process_time()
        t.fit(max_steps=t.step + n)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        # fit() evaluates nothing (no eval_data): dt is training, plus the mask-change check at the epoch end
        spent += dt; spent_cpu += dc; per_epoch.append(dt); per_epoch_cpu.append(dc)
        accs.append(t.evaluate(te))
        if to_target is None and target is not None and accs[-1] >= target: to_target = spent_cpu
    return {"variant": variant, "setting": dict(trainer_kw or {}), "epochs_run": len(per_epoch),
            "seconds_per_epoch": statistics.median(per_epoch), "cpu_seconds_per_epoch": statistics.median(per_epoch_cpu),
            "seconds_total": spent, "cpu_seconds_total": spent_cpu, "cpu_seconds_to_target": to_target, "target": target,
            "accuracy_per_epoch": accs, "final_accuracy": accs[-1], "stopped_early": t.stopped}


def profile_step(variant, tr, steps=4, channels_last=None) -> dict:
    """Where one Conv4 x1 training step goes (batch 128, kept 0.1): process CPU seconds per step in mask thresholding
    (allocation + top-k + sign/alpha), forward, backward (conv, BatchNorm, pooling and the straight-through rule) and
    the optimizer; plus the torch profiler's top operators (the profiler measures wall-clock, inflated on a shared
    machine; the phases are process CPU time)."""
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile
    from effdata.mpt import MPTTrainer, _normalisation, build
    mean, std = _normalisation(tr.name)
    net = build("conv4", tr.shape, tr.num_classes, kept=0.1, seed=0, mean=mean, std=std)
    kw = {} if channels_last is None else {"channels_last": channels_last}
    t = MPTTrainer(net, tr, kept=0.1, variant=variant, epochs=1, batch_size=128, lr=0.1, seed=0, augment=False, **kw)
    batch = next(iter(t.loader))
    x = batch.x.contiguous(memory_format=torch.channels_last) if t.channels_last else batch.x
    phases = {k: [] for k in ("mask", "forward", "backward", "optimizer")}
    def step(i):
        c = [time.process_time()]
        refresh = i % t.refresh_every == 0
        if refresh and (t.mode == "global" or t.schedule != "none"): t.allocate(i)
        for l in t.layers.values():
            l.hold_mask = not refresh
            l._binary()
        c.append(time.process_time())
        loss = F.cross_entropy(t.model(x), batch.y); c.append(time.process_time())
        loss.backward(); c.append(time.process_time())
        t.optimizer.step(); t.optimizer.zero_grad(set_to_none=True); c.append(time.process_time())
        return [b - a for a, b in zip(c[:-1], c[1:])]
    t.model.train(); step(0)                                   # warm-up
    for i in range(1, steps + 1):
        for k, v in zip(phases, step(i)): phases[k].append(v)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps + 1, 2 * steps + 1): step(i)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
    return {"variant": variant, "channels_last": t.channels_last, "mask_method": t.layers[next(iter(t.layers))].mask_method,
            "refresh_every": t.refresh_every,
            "cpu_seconds_per_step": {k: statistics.mean(v) for k, v in phases.items()},
            "top_ops": [{"op": e.key, "self_wall_ms_per_step": e.self_cpu_time_total / 1e3 / steps, "calls_per_step": e.count / steps}
                        for e in ops]}


def training(res):
    "Training time per epoch (process CPU) and to a target accuracy: baseline (full sort every step) vs improved; Conv4 profile."
    from effdata.data import load_dataset
    out = []
    mn_tr, mn_te = load_dataset("mnist"), load_dataset("mnist", "test")
    g = np.random.default_rng(0)
    mn_te = mn_te.subset(np.sort(g.choice(len(mn_te), 2000, replace=False)))
    cf, cf_te = load_dataset("cifar10"), load_dataset("cifar10", "test")
    cf, cf_te = cf.subset(np.arange(1024)), cf_te.subset(np.arange(256))
    conv = "conv4 x1, cifar10 (1024 train)"
    runs = [("mlp 784-512-512-10, mnist (17435 train)", "mlp", mn_tr, mn_te, 4, 0.90, {"hidden": (512, 512)}, "baseline", None),
            ("mlp 784-512-512-10, mnist (17435 train)", "mlp", mn_tr, mn_te, 4, 0.90, {"hidden": (512, 512)}, "improved", None)]
    for variant, tk in (("baseline", None), ("improved", None), ("baseline", {"channels_last": True}),
                        ("improved", {"channels_last": False})):
        runs.append((conv, "conv4", cf, cf_te, 2, None, {}, variant, tk))
    for label, arch, tr, te, epochs, target, kw, variant, tk in runs:
        r = {"model": label, **_train_timed(arch, tr, te, variant, 0.1, epochs, target, trainer_kw=tk, **kw)}
        out.append(r); print({k: v for k, v in r.items() if k != "accuracy_per_epoch"}, flush=True)
    res["training"] = out
    by = {}
    for r in out:
        if not r["setting"]: by.setdefault(r["model"], {})[r["variant"]] = r
    res["training_speedup_per_epoch"] = {m: v["baseline"]["cpu_seconds_per_epoch"] / v["improved"]["cpu_seconds_per_epoch"]
                                         for m, v in by.items()}
    res["training_speedup_to_target"] = {m: (v["baseline"]["cpu_seconds_to_target"] / v["improved"]["cpu_seconds_to_target"]
                                            if v["baseline"]["cpu_seconds_to_target"] and v["improved"]["cpu_seconds_to_target"] else None)
                                         for m, v in by.items()}
    res["training_speedup"] = res["training_speedup_per_epoch"][out[0]["model"]]
    res["training_speedup_conv4"] = res["training_speedup_per_epoch"][conv]
    res["training_profile_conv4"] = [profile_step(v, cf, channels_last=cl) for v, cl in
                                     (("baseline", None), ("improved", None), ("improved", False))]
    for p in res["training_profile_conv4"]: print(p, flush=True)


def _read_jsonl(path: Path) -> list[dict]: return Rows(path).rows


def _sweep_table(rows: list[dict]) -> list[dict]:
    """Mean/std over seeds per (variant, kept); the flattening check (validation accuracy gained over the last quarter of
    the epochs, points, mean over runs); the binomial standard error of one run's test accuracy and of the seed mean."""
    groups = {}
    for r in rows: groups.setdefault(r["variant"], {}).setdefault(r["kept"], []).append(r)
    table = []
    for var, by in groups.items():
        for kept, rs in sorted(by.items()):
            accs = [r["accuracy"] for r in rs]
            q = max(1, rs[0]["epochs"] // 4)
            late = [100 * (r["val_per_epoch"][-1] - r["val_per_epoch"][-1 - q]) for r in rs if len(r["val_per_epoch"]) > q]
            n_test, m = rs[0]["settings"]["test"], float(np.mean(accs))
            se_run = 100 * math.sqrt(m * (1 - m) / n_test)
            table.append({"variant": var, "kept": kept, "n": len(rs), "seeds": sorted(r["seed"] for r in rs), "epochs": rs[0]["epochs"],
                          "mean": m, "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                          "accuracies": accs, "val_gain_last_quarter_pts": float(np.mean(late)) if late else None,
                          "val_gain_last_quarter_pts_runs": late, "binomial_se_run_pts": se_run,
                          "binomial_se_mean_pts": se_run / math.sqrt(len(rs)),
                          "cpu_seconds_per_epoch": float(np.median([c for r in rs for c in r["train_cpu_seconds_per_epoch"]])),
                          "epochs_run": [r["epochs_run"] for r in rs], "stopped_early": [r["stopped_early"] for r in rs],
                          "parts": rs[0].get("parts")})
    return table


def _spread(table: list[dict], var: str) -> dict | None:
    """Best minus worst seed-mean over kept 0.1-0.8 (points), with its noise: the standard error of a difference of two
    seed means, from the binomial error of the 1017-image test split and from the seeds' own scatter."""
    band = [t for t in table if t["variant"] == var and 0.1 - 1e-9 <= t["kept"] <= 0.8 + 1e-9]
    if len({t["kept"] for t in band}) < 3: return None
    hi, lo = max(band, key=lambda t: t["mean"]), min(band, key=lambda t: t["mean"])
    se_binom = math.hypot(hi["binomial_se_mean_pts"], lo["binomial_se_mean_pts"])
    seeds_se = [100 * t["std"] / math.sqrt(t["n"]) for t in (hi, lo) if t["std"] is not None]
    se_seeds = math.hypot(*seeds_se) if len(seeds_se) == 2 else None
    spread = 100 * (hi["mean"] - lo["mean"])
    return {"spread_pts": spread, "best_kept": hi["kept"], "worst_kept": lo["kept"], "seeds_per_kept": {t["kept"]: t["n"] for t in band},
            "se_difference_binomial_pts": se_binom, "se_difference_seeds_pts": se_seeds,
            "within_noise": spread <= 2 * max(se_binom, se_seeds or 0)}


def cifar_sweep(res):
    """Fold the CIFAR-10 sweeps (bench/mpt_sweep.py, run in the background) into the result: the converged one
    (mpt_sweep_e36.jsonl) as the main rows and keys, the first 12-epoch one (mpt_sweep.jsonl) under *_12epochs keys,
    and the validation-only ablation (mpt_ablation.jsonl) beside the 12-epoch runs of the same seeds."""
    import mpt_sweep
    first = _read_jsonl(mpt_sweep.out_path(12))
    main_rows = _read_jsonl(mpt_sweep.out_path())
    first_main = [r for r in first if r["epochs"] == 12]
    if first_main:
        t12 = _sweep_table(first_main)
        res["sweep_cifar10_12epochs"] = t12
        for var in ("baseline", "improved"):
            sp = _spread(t12, var)
            if sp: res[f"accuracy_spread_0.1_0.8_cifar10_{var}_12epochs"] = sp["spread_pts"]
    longer = [r for r in first if r["epochs"] > 12]
    if longer:
        res["sweep_cifar10_longer_budget"] = [
            {"variant": r["variant"], "kept": r["kept"], "seed": r["seed"], "epochs": r["epochs"], "accuracy": r["accuracy"],
             "same_seed_short_budget": next((m["accuracy"] for m in first_main if (m["variant"], m["kept"], m["seed"]) ==
                                             (r["variant"], r["kept"], r["seed"])), None)} for r in longer]
    rows = main_rows or first_main
    if rows:
        res["sweep"] = [r for r in res.get("sweep", []) if r["dataset"] != "cifar10"] + [
            {k: r[k] for k in ("variant", "dataset", "model", "kept", "seed", "accuracy", "layer_kept", "mask_change", "epochs",
                               "steps", "total_steps", "stopped_early", "val_per_epoch", "train_seconds", "train_cpu_seconds")}
            for r in rows]
        st = rows[0]["settings"]
        res.setdefault("sweep_settings", {})["cifar10"] = {
            "model": f"conv4 x{st.get('width')}, MPT-1/32", "epochs": rows[0]["epochs"],
            "batch_size": st.get("batch_size"), "lr": st.get("lr"), "optimizer": "sgd cosine", "train": st.get("train"),
            "validation": st.get("val"), "test": st.get("test"), "augment": False, "threads": st.get("threads"),
            "runs": len(rows), "runs_planned": len(mpt_sweep.jobs(rows[0]["epochs"])),
            "cpu_seconds": sum(r["train_cpu_seconds"] + r["eval_test_cpu_seconds"] for r in rows),
            "source": f"bench/mpt_sweep.py -> bench/results/{mpt_sweep.out_path(rows[0]['epochs']).name}"}
        table = _sweep_table(rows)
        res["sweep_cifar10"] = table
        res.setdefault("seeds", {})["cifar10"] = {f"{t['variant']} kept {t['kept']:g}": t["seeds"] for t in table}
        for var in ("baseline", "improved"):
            sp = _spread(table, var)
            res.pop(f"accuracy_spread_0.1_0.8_cifar10_{var}", None); res.pop(f"accuracy_spread_0.1_0.8_cifar10_{var}_detail", None)
            if sp:
                res[f"accuracy_spread_0.1_0.8_cifar10_{var}"] = sp["spread_pts"]
                res[f"accuracy_spread_0.1_0.8_cifar10_{var}_detail"] = sp
        # training speed at equal budget: the same (kept, seed) runs of both variants, CPU seconds per epoch and accuracy
        pairs = {}
        for r in rows:
            if r["variant"] in ("baseline", "improved"): pairs.setdefault((r["kept"], r["seed"]), {})[r["variant"]] = r
        pairs = [v for v in pairs.values() if len(v) == 2]
        if not pairs and first_main:                  # the converged sweep has no pair yet: the 12-epoch one's
            rows = first_main; pairs = {}
            for r in rows:
                if r["variant"] in ("baseline", "improved"): pairs.setdefault((r["kept"], r["seed"]), {})[r["variant"]] = r
            pairs = [v for v in pairs.values() if len(v) == 2]
        if pairs:
            cps = {v: float(np.median([c for p in pairs for c in p[v]["train_cpu_seconds_per_epoch"]])) for v in ("baseline", "improved")}
            res["training_conv4_sweep"] = {
                "model": res["sweep_settings"]["cifar10"]["model"], "epochs": pairs[0]["baseline"]["epochs"], "pairs": len(pairs),
                "cpu_seconds_per_epoch": cps, "speedup_per_epoch": cps["baseline"] / cps["improved"],
                "cpu_seconds_per_run": {v: float(np.mean([p[v]["train_cpu_seconds"] for p in pairs])) for v in ("baseline", "improved")},
                "accuracy_mean": {v: float(np.mean([p[v]["accuracy"] for p in pairs])) for v in ("baseline", "improved")},
                "accuracy_difference_pts": [100 * (p["improved"]["accuracy"] - p["baseline"]["accuracy"]) for p in pairs]}
    # the flattening check: the same (variant, kept, seed) at twice the budget (mpt_sweep.py --epochs 2*EPOCHS)
    long_ = _read_jsonl(mpt_sweep.out_path(2 * mpt_sweep.EPOCHS))
    if long_ and main_rows:
        out = []
        for var, kept in sorted({(r["variant"], r["kept"]) for r in long_}, key=lambda x: (x[1], x[0])):
            pairs = [(r, m) for r in long_ if (r["variant"], r["kept"]) == (var, kept)
                     for m in main_rows if (m["variant"], m["kept"], m["seed"]) == (var, kept, r["seed"])]
            if not pairs: continue
            d = [100 * (r["accuracy"] - m["accuracy"]) for r, m in pairs]
            out.append({"variant": var, "kept": kept, "seeds": [r["seed"] for r, _ in pairs],
                        "epochs": [pairs[0][1]["epochs"], pairs[0][0]["epochs"]],
                        "accuracy_short": float(np.mean([m["accuracy"] for _, m in pairs])),
                        "accuracy_long": float(np.mean([r["accuracy"] for r, _ in pairs])),
                        "difference_pts": float(np.mean(d)), "difference_pts_runs": d,
                        "difference_se_pts": float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None,
                        "val_last3_short": float(np.mean([np.mean(m["val_per_epoch"][-3:]) for _, m in pairs])),
                        "val_last3_long": float(np.mean([np.mean(r["val_per_epoch"][-3:]) for r, _ in pairs]))})
        res["flattening_check_cifar10"] = out
    abl = _read_jsonl(mpt_sweep.ABLATION)
    if abl:
        # validation only: final validation accuracy and the mean of the last 3 epochs (less noisy), seed means, against
        # the 12-epoch sweep's baseline and improved runs of the same seeds and kept fractions (same data, same budget)
        ref = [r for r in first_main if (r["kept"], r["seed"]) in {(a["kept"], a["seed"]) for a in abl}]
        out = []
        for (var, kept), rs in sorted({(r["variant"], r["kept"]): None for r in ref + abl}.items(), key=lambda x: (x[0][1], x[0][0])):
            rs = [r for r in ref + abl if (r["variant"], r["kept"]) == (var, kept)]
            out.append({"setting": var, "kept": kept, "seeds": sorted(r["seed"] for r in rs), "epochs": rs[0]["epochs"],
                        "val_final": float(np.mean([r["val_per_epoch"][-1] for r in rs])),
                        "val_last3": float(np.mean([np.mean(r["val_per_epoch"][-3:]) for r in rs])),
                        "val_last3_runs": [float(np.mean(r["val_per_epoch"][-3:])) for r in rs],
                        "cpu_seconds_per_epoch": float(np.median([c for r in rs for c in r["train_cpu_seconds_per_epoch"]])),
                        "layer_kept": {k: float(np.mean([r["layer_kept"][k] for r in rs])) for k in rs[0]["layer_kept"]}})
        res["ablation_cifar10_validation"] = out


def summarise(res):
    from effdata.mpt import sweep_summary
    cifar_sweep(res)
    s = sweep_summary(res.get("sweep", []))
    res["sweep_summary"] = s
    imp = next((x for x in s if x["dataset"] == "digits" and x["variant"] == "improved"), None)
    if imp: res["accuracy_spread_0.1_0.8"] = imp["spread"]
    res.setdefault("seeds", {})["digits"] = res.get("sweep_settings", {}).get("digits", {}).get("seeds")
    low = {}
    for x in s:
        for k in (0.02, 0.05):
            if k in x["curve"]: low.setdefault(f"{x['dataset']} kept {k}", {})[x["variant"]] = x["curve"][k]
    res["low_kept_accuracy"] = low


def table_rows(res) -> list[dict]:
    rows = []
    for x in res.get("sweep_summary", []):
        if x["dataset"] == "cifar10": continue
        c = x["curve"]
        rows.append({"what": f"sweep {x['dataset']} {x['model']} {x['variant']} ({x['seeds']} seeds)",
                     "value": f"spread 0.1-0.8: {x['spread']:.2f} pts, best {100 * x['best']:.2f} %",
                     "note": ", ".join(f"{k:g}: {100 * v:.1f}" for k, v in c.items())})
    def sweep_row(t, label=""):
        sd = f" ± {100 * t['std']:.1f}" if t["std"] is not None else ""
        return {"what": f"sweep cifar10 conv4 kept {t['kept']:g}: {t['variant']} ({t['n']} seed{'s' * (t['n'] > 1)}, {t['epochs']} epochs{label})",
                "value": f"{100 * t['mean']:.1f}{sd} %",
                "note": f"seeds {', '.join(f'{100 * a:.1f}' for a in t['accuracies'])}; test-split standard error "
                        f"{t['binomial_se_run_pts']:.1f} pts per run, {t['binomial_se_mean_pts']:.1f} for the mean; validation "
                        f"gain over the last quarter {t['val_gain_last_quarter_pts']:+.1f} pts (runs "
                        f"{', '.join(f'{g:+.1f}' for g in t['val_gain_last_quarter_pts_runs'])}); "
                        f"{t['cpu_seconds_per_epoch']:.1f} CPU s/epoch"
                        + (f"; stopped early in {sum(t['stopped_early'])} run(s)" if any(t["stopped_early"]) else "")}
    for t in res.get("sweep_cifar10", []): rows.append(sweep_row(t))
    for var in ("baseline", "improved"):
        d = res.get(f"accuracy_spread_0.1_0.8_cifar10_{var}_detail")
        if d:
            se = f"{d['se_difference_binomial_pts']:.1f} (test split)" + (f", {d['se_difference_seeds_pts']:.1f} (seed scatter)" if d["se_difference_seeds_pts"] else "")
            rows.append({"what": f"spread cifar10 {var}, kept 0.1-0.8", "value": f"{d['spread_pts']:.2f} pts",
                         "note": f"best kept {d['best_kept']:g}, worst {d['worst_kept']:g}; seeds per kept "
                                 f"{', '.join(f'{k:g}: {n}' for k, n in d['seeds_per_kept'].items())}; standard error of the "
                                 f"difference {se} pts: {'within' if d['within_noise'] else 'beyond'} noise (2 standard errors)"})
    if res.get("sweep_settings", {}).get("cifar10", {}).get("epochs") != 12:
        for t in res.get("sweep_cifar10_12epochs", []): rows.append(sweep_row(t, ", first run, not converged"))
    st = {"epochs": 12}
    for r in res.get("sweep_cifar10_longer_budget", []):
        rows.append({"what": f"sweep cifar10 conv4 kept {r['kept']:g}: {r['variant']}, seed {r['seed']}, {r['epochs']} epochs",
                     "value": f"{100 * r['accuracy']:.1f} %", "note": f"same seed at {st.get('epochs')} epochs: "
                     + (f"{100 * r['same_seed_short_budget']:.1f} %" if r["same_seed_short_budget"] is not None else "not run")})
    for f in res.get("flattening_check_cifar10", []):
        se = f" ± {f['difference_se_pts']:.1f}" if f["difference_se_pts"] is not None else ""
        rows.append({"what": f"flattening check cifar10 kept {f['kept']:g}: {f['variant']}, {f['epochs'][1]} vs {f['epochs'][0]} epochs "
                             f"(seeds {', '.join(map(str, f['seeds']))})",
                     "value": f"{f['difference_pts']:+.1f}{se} pts",
                     "note": f"test accuracy {100 * f['accuracy_long']:.1f} vs {100 * f['accuracy_short']:.1f} % (per seed "
                             f"{', '.join(f'{x:+.1f}' for x in f['difference_pts_runs'])}); validation, mean of the last 3 epochs, "
                             f"{100 * f['val_last3_long']:.1f} vs {100 * f['val_last3_short']:.1f} %: doubling the budget "
                             + ("does not pay (accuracy has flattened)" if f["difference_pts"] < 1 else "still pays")})
    for a in res.get("ablation_cifar10_validation", []):
        rows.append({"what": f"ablation cifar10 conv4 kept {a['kept']:g} (validation, {a['epochs']} epochs, seeds "
                             f"{', '.join(map(str, a['seeds']))}): {a['setting']}",
                     "value": f"{100 * a['val_last3']:.1f} %",
                     "note": f"mean of the last 3 epochs' validation accuracy (runs {', '.join(f'{100 * v:.1f}' for v in a['val_last3_runs'])}); "
                             f"final epoch {100 * a['val_final']:.1f} %; {a['cpu_seconds_per_epoch']:.1f} CPU s/epoch; layer kept "
                             + ", ".join(f"{k.replace('body.', '')}: {v:.3f}" for k, v in a["layer_kept"].items())})
    tc = res.get("training_conv4_sweep")
    if tc:
        d = tc["accuracy_difference_pts"]
        rows.append({"what": f"training {tc['model']} in the CIFAR-10 sweep ({tc['pairs']} runs of each variant, {tc.get('epochs', 12)} epochs)",
                     "value": f"{tc['speedup_per_epoch']:.2f}x per epoch",
                     "note": f"CPU s/epoch baseline {tc['cpu_seconds_per_epoch']['baseline']:.2f}, improved "
                             f"{tc['cpu_seconds_per_epoch']['improved']:.2f}; CPU s per run {tc['cpu_seconds_per_run']['baseline']:.0f} vs "
                             f"{tc['cpu_seconds_per_run']['improved']:.0f}; test accuracy {100 * tc['accuracy_mean']['baseline']:.1f} vs "
                             f"{100 * tc['accuracy_mean']['improved']:.1f} % (improved - baseline per run: mean {np.mean(d):+.1f}, "
                             f"min {min(d):+.1f}, max {max(d):+.1f} pts)"})
    for r in res.get("ablation_cifar10_kept_0.05", []):
        rows.append({"what": f"ablation cifar10 conv4 kept 0.05 (3 epochs, earlier run): {r['setting']}", "value": f"{100 * r['accuracy']:.1f} %",
                     "note": "layer kept " + ", ".join(f"{k.replace('body.', '')}: {v:.3f}" for k, v in r["layer_kept"].items())})
    for r in res.get("ablation_digits_kept_0.02", []):
        rows.append({"what": f"ablation digits mlp kept 0.02: {r['setting']} (3 seeds)", "value": f"{100 * r['accuracy']:.1f} %",
                     "note": ", ".join(f"{100 * a:.1f}" for a in r["accuracies"])})
    for r in res.get("inference", []):
        if "dense_1_cpu_ms" not in r: continue
        rows.append({"what": f"inference {r['model']}, batch {r['batch']}", "value": f"{r['speedup']:.2f}x (2 threads {r['speedup_2threads']:.2f}x)",
                     "note": f"1 thread CPU time: dense {r['dense_1_cpu_ms']:.3f} ms, packed {r['packed_1_cpu_ms']:.3f} ms "
                             f"(wall {r['dense_1_ms']:.3f} / {r['packed_1_ms']:.3f}); 2 threads wall: dense {r['dense_2_ms']:.3f} ms, "
                             f"packed {r['packed_2_ms']:.3f} ms; bit-exact {r['bit_exact']}; size {r['dense_fp32_bytes'] / 1e6:.2f} MB -> "
                             f"{r['packed_bytes'] / 1e6:.3f} MB ({r['compression']:.1f}x)"})
    for r in res.get("training", []):
        if "cpu_seconds_per_epoch" not in r: continue
        tt = ("" if r["target"] is None else
              f"to {100 * r['target']:.0f} %: " + (f"{r['cpu_seconds_to_target']:.1f} CPU s; " if r["cpu_seconds_to_target"] else "not reached; "))
        setting = "".join(f", {k}={v}" for k, v in r["setting"].items())
        rows.append({"what": f"training {r['model']}, {r['variant']}{setting}", "value": f"{r['cpu_seconds_per_epoch']:.2f} CPU s/epoch",
                     "note": f"{tt}wall {r['seconds_per_epoch']:.2f} s/epoch; {r['epochs_run']} epochs, final {100 * r['final_accuracy']:.1f} %"
                             + (", stopped early" if r["stopped_early"] else "")})
    for p in res.get("training_profile_conv4", []):
        ph = p["cpu_seconds_per_step"]
        rows.append({"what": f"profile conv4 x1 step (batch 128): {p['variant']}, {p['mask_method']}, refresh {p['refresh_every']}, "
                             f"channels_last {p['channels_last']}", "value": f"{sum(ph.values()):.3f} CPU s/step",
                     "note": ", ".join(f"{k} {v:.3f}" for k, v in ph.items()) + "; top ops (profiler, wall ms per step): "
                             + ", ".join(f"{o['op']} {o['self_wall_ms_per_step']:.0f}" for o in p["top_ops"][:5])})
    for k in ("accuracy_spread_0.1_0.8", "accuracy_spread_0.1_0.8_cifar10_improved", "accuracy_spread_0.1_0.8_cifar10_baseline",
              "accuracy_spread_0.1_0.8_cifar10_improved_12epochs", "accuracy_spread_0.1_0.8_cifar10_baseline_12epochs",
              "inference_speedup_batch1", "inference_speedup_batch64", "inference_speedup_batch64_2threads",
              "training_speedup", "training_speedup_conv4"):
        if k in res: rows.append({"what": k, "value": f"{res[k]:.3g}", "note": ""})
    return rows or [{"what": "(nothing measured yet)", "value": "", "note": ""}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["sweep", "cifar", "ablation", "ablation_digits", "inference", "training", "all", "report"],
                    help="cifar: the old 3-epoch one-seed sweep; the CIFAR-10 sweep is now bench/mpt_sweep.py, folded in by every part")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    old = RESULTS / "mpt.json"
    res = json.loads(old.read_text()) if old.exists() else {}
    t0 = time.perf_counter()
    if args.part in ("sweep", "all"): sweep_digits(res)
    if args.part == "cifar": sweep_cifar(res)
    if args.part in ("ablation", "all"): ablation(res)
    if args.part == "ablation_digits": ablation_digits(res)
    if args.part in ("inference", "all"): inference(res, args.threads)
    if args.part in ("training", "all"): training(res)
    if args.part != "report":
        res["machine"] = machine(args.threads); res["threads"] = args.threads
        res.setdefault("seconds", {})[args.part] = time.perf_counter() - t0
    summarise(res)
    write("mpt", res, "Multi-prize lottery tickets: prune-ratio sweep, packed inference, training time", table_rows(res),
          "Sweep: test accuracy (%) per kept fraction, mean (± std) over seeds; spread = best - worst mean over kept 0.1-0.8. "
          "baseline = biprop as published (layer-wise kept, full sort every step, NCHW); improved = global threshold over "
          "per-layer-normalised scores, cubic kept schedule from 0.5, kthvalue, mask refresh every 2 steps, early stop, "
          "channels-last conv inputs. CIFAR-10: 4096 training images, 1024 other training images for validation (accuracy "
          "per epoch), the 1017 test images for the reported accuracy, one torch thread (bench/mpt_sweep.py). "
          "Inference: packed MPT-1/1 (numba XNOR-popcount, BatchNorm + sign as one integer threshold per channel; the float "
          "first layer runs in PyTorch on cache-sized chunks of the batch, each packed as it comes out) vs the "
          "same network as dense fp32 PyTorch layers, called on the whole batch; 1 thread: torch and numba at 1 thread, process CPU time, best of 9 "
          "interleaved rounds; 2 threads: both at 2 threads, wall-clock. Training: process CPU seconds of training steps "
          "per epoch (median), kept 0.1 (the Conv4 x1 rows time epochs on 1024 images: their accuracy means little). "
          "Headlines: inference_speedup_* = Conv4 x1; training_speedup = MNIST MLP per epoch; training_speedup_conv4 = "
          "Conv4 x1 per epoch. The 2-core machine is shared: CPU time is the robust measure; wall-clock (the 2-thread "
          "numbers above all) is inflated by other jobs; the load average around the inference timing is in the JSON "
          "(inference_load_average).")
    print((RESULTS / "mpt.md").read_text())


if __name__ == "__main__":
    main()
