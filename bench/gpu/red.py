"""GPU check of CDD-RED (issue 15): the paper's DnCNN (17 layers, width 64, 558 k parameters) trained on CIFAR-10
pairs, DO against CDD-RED, with the paper's objective (pixel term = the l1 norm per image, crop-and-pad + cutmix with the
prediction-consistency filter), Adam 1e-3 cosine, bf16 mixed precision. gamma = lambda = RED_GAMMA (default 25, the
value bench/red.py --tune chose on CIFAR-10 validation pairs: the summed pixel term of a CIFAR-10 image is ~80 against
cross-entropies of ~2 whatever the DnCNN's size, so the paper's 0.025 leaves the alignment terms without effect here).

Pairs and held-out cells come from bench/red.py (the same protocol): training pairs of the first RED_TRAIN train
images by FGSM, PGD-10 and CW-20 against cifar10_cnn and cifar10_lenet; test cells: those attacks on RED_TEST test
images (seen), AutoAttack (APGD-CE + APGD-T) and an adaptive PGD-10 through each denoiser on RED_AA test images
(unseen attacks), PGD-10 against a SmallCNN trained here on other train images (unseen victim). Metrics as in
bench/red.py (PSNR, PA_benign, PA_adv, Grad-CAM and IG IoU); one seed.

Run by bench/gpu/red.sh. Without a GPU it trains the same 17 x 64 DnCNN for RED_STEPS steps (default 3) per setting
on the pairs of 64 images, evaluates on 16-image cells and labels the result "cpu-fallback": a check that the script
works and a measurement of the CPU's seconds per step at the paper's size, not a benchmark. Environment:
  RED_EPOCHS  epochs of each run (default 30 on a GPU)
  RED_BUDGET  training seconds allowed per run; a run past it stops at the end of that epoch and says so (default 170)
  RED_TRAIN, RED_TEST, RED_AA  image counts (defaults 4000, 500, 200 on a GPU)
  RED_GAMMA   gamma = lambda of CDD-RED (default 25.0)
  RED_OUT     result name under bench/results (default red_gpu)
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from _common import machine, sync, write  # noqa: E402

_spec = importlib.util.spec_from_file_location("red_bench", BENCH / "red.py")
rb = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(rb)


def main():
    from effdata.core import seed_everything
    from effdata.models import count_params
    from effdata.red import AdvPairs, DnCNN, REDTrainer, evaluate_red, summarize
    gpu = torch.cuda.is_available()
    env = lambda k, d: int(os.environ.get(k, d))
    if gpu:
        torch.backends.cudnn.benchmark = True
        a = argparse.Namespace(device="cuda", n_train=env("RED_TRAIN", 4000), n_val=0, n_test=env("RED_TEST", 500),
                               n_aa=env("RED_AA", 200), victim_images=3000, victim_epochs=15, cache="/tmp/effdata_red_gpu")
        mp, bs, epochs, max_steps = "bf16", 128, env("RED_EPOCHS", 30), None
    else:
        a = argparse.Namespace(device=None, n_train=64, n_val=0, n_test=16, n_aa=16, victim_images=256, victim_epochs=1,
                               cache="/tmp/effdata_red_gpu_cpu")
        mp, bs, epochs, max_steps = None, 32, 1, env("RED_STEPS", 3)
    budget = float(os.environ.get("RED_BUDGET", 170))
    gamma = float(os.environ.get("RED_GAMMA", 25.0))
    t0 = time.perf_counter()
    log = lambda m: print(f"{time.perf_counter() - t0:7.0f} s  {m}", flush=True)
    P = rb.build_all("cifar10", a, log)
    train, f = P["train"], P["f"]
    fixed = AdvPairs.concat([P["seen"], P["aa"], P["held_v"]])
    rows, runs = [], {}
    for setting in ("DO", "CDD-RED"):
        seed_everything(0)
        den = DnCNN(3, 17, 64)
        w = {} if setting == "DO" else {"gamma": gamma, "lam": gamma}
        tr = REDTrainer(den, train, f, setting=setting, l1="sum", **w, epochs=epochs, batch_size=bs, lr=1e-3, seed=0,
                        progress=False, device=a.device, mixed_precision=mp, classifier_name="cifar10_cnn")
        steps_per_epoch = -(-len(train) // bs)
        sync(); t = time.perf_counter(); stopped = False
        for e in range(epochs):               # epoch by epoch, so that RED_BUDGET can stop a run cleanly
            tr.fit(max_steps=min(steps_per_epoch * (e + 1), max_steps or 10**9))
            sync()
            if max_steps and tr.step >= max_steps: break
            if time.perf_counter() - t > budget and e + 1 < epochs: stopped = True; break
        secs = time.perf_counter() - t
        den = tr.model.eval()
        n = max(1, len(tr.history) // 10)
        runs[setting] = {"steps": tr.step, "epochs_done": tr.step / steps_per_epoch, "train_seconds": secs,
                         "seconds_per_step": secs / max(tr.step, 1), "batch_size": bs,
                         "final_loss": float(np.mean(tr.history[-n:])) if tr.history else None,
                         "stopped_by_budget": stopped, "gamma": tr.gamma, "lam": tr.lam, "l1": tr.l1}
        log(f"{setting}: {tr.step} steps in {secs:.1f} s ({secs / max(tr.step, 1):.3f} s/step)")
        t = time.perf_counter()
        ev = evaluate_red({setting: den}, fixed, f, attr_limit=64, ig_steps=16)
        adp = rb.adaptive_pairs(P, "cifar10", setting, den, a, 0).perturbed()
        ev += evaluate_red({setting: den}, adp, f, attr_limit=64, ig_steps=16)
        for r in ev:
            r["group"] = rb.group_of(r["attack"], r["victim"], train.attacks, train.victims)
            r["seed"] = 0
        rows += ev
        runs[setting]["eval_seconds"] = time.perf_counter() - t
        log(f"{setting}: evaluated {len(ev)} cells in {runs[setting]['eval_seconds']:.1f} s")
    mean = rb.group_means(rows, [0])
    by = {g: rb.group_means([r for r in rows if r["group"] == g], [0]) for g in rb.GROUPS}
    gain = lambda m: 100 * (m["CDD-RED"]["pa_adv"] - m["DO"]["pa_adv"])
    gap = lambda m: m["DO"]["psnr"] - m["CDD-RED"]["psnr"]
    out = {"label": "gpu" if gpu else "cpu-fallback", "device": torch.cuda.get_device_name(0) if gpu else "cpu",
           "dataset": "cifar10 subset", "denoiser": {"arch": "DnCNN", "depth": 17, "width": 64,
                                                     "params": count_params(DnCNN(3, 17, 64))},
           "objective": f"l1 sum per image + {gamma:g} CE + {gamma:g} CE (CDD-RED: crop_pad + cutmix, filter)",
           "mixed_precision": mp, "n_train_pairs": len(train), "victims": rb.SETUPS["cifar10"]["victims"],
           "unseen_victim": P["uv_info"], "runs": runs, "seconds_data": P["seconds"],
           "mean": mean, "by_group": by, "pa_adv_gain_vs_do": gain(mean), "psnr_gap_vs_do": gap(mean),
           "pa_adv_gain_vs_do_by_group": {g: gain(v) for g, v in by.items() if v},
           "rows": [{k: r.get(k) for k in ("setting", "attack", "victim", "group", "n", *rb.METRIC_KEYS)} for r in rows],
           "seconds_total": time.perf_counter() - t0, "machine": machine()}
    md = [{"cells": g, "setting": s, "PSNR x": m["psnr"], "PA_benign": m["pa_benign"], "PA_adv": m["pa_adv"],
           "IoU Grad-CAM": m["iou_gradcam"], "IoU IG": m["iou_ig"]} for g, v in [("all", mean), *by.items()] for s, m in v.items()]
    notes = (f"Label: **{out['label']}**. DnCNN 17 x 64 ({out['denoiser']['params']:,} parameters), "
             + "; ".join(f"{s}: {r['steps']} steps ({r['epochs_done']:.1f} epochs) in {r['train_seconds']:.0f} s, "
                         f"{r['seconds_per_step']:.3f} s/step at batch {r['batch_size']}" for s, r in runs.items())
             + f". {len(train)} training pairs. CDD-RED minus DO: PA_adv {out['pa_adv_gain_vs_do']:+.1f} points, "
               f"DO minus CDD-RED PSNR {out['psnr_gap_vs_do']:+.2f} dB. Total {out['seconds_total']:.0f} s."
             + ("" if gpu else " CPU fallback: a few steps on 64 images, a check that the script runs, not a result."))
    write(os.environ.get("RED_OUT", "red_gpu"), out, "CDD-RED at the paper's DnCNN size (17 x 64)", md, notes)
    print(notes)


if __name__ == "__main__":
    main()
