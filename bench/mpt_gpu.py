"""Biprop training speed on a GPU: sort every step (biprop as published) against kthvalue every step and against the
improved trainer (kthvalue, global threshold, mask refresh every 2 steps), Conv4 x1 and the MNIST-sized MLP, kept 0.1.
Run by bench/gpu/mpt.sh (under 10 minutes). Without a GPU it runs a few steps on the CPU as a check of the script and
labels the result "cpu-fallback" (a separate file, so a GPU result is never overwritten by a CPU one).

    EFFDATA_DATA=../shared/data python bench/mpt_gpu.py [--steps 150] [--warmup 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, write  # noqa: E402

SETTINGS = {"baseline (sort every step)": dict(variant="baseline"),
            "kthvalue every step": dict(variant="baseline", mask_method="kthvalue"),
            "improved (kthvalue, refresh every 2)": dict(variant="improved", schedule="none", stop_tol=None)}


def time_steps(arch, data, device, setting, steps, warmup, batch_size=128, **build_kw) -> dict:
    "Median seconds per training step (synchronised), after `warmup` steps; the same batches for every setting."
    from effdata.mpt import MPTTrainer, _normalisation, build
    mean, std = _normalisation(data.name)
    net = build(arch, data.shape, data.num_classes, kept=0.1, seed=0, mean=mean, std=std, **build_kw)
    total = warmup + steps
    epochs = -(-total * batch_size // len(data))
    t = MPTTrainer(net, data, kept=0.1, epochs=epochs, batch_size=batch_size, lr=0.1, seed=0, augment=False,
                   device=device, progress=False, **SETTINGS[setting])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t.fit(max_steps=warmup); sync()
    ts, c0 = [], time.process_time()
    for _ in range(steps):
        w0 = time.perf_counter()
        t.fit(max_steps=t.step + 1); sync()
        ts.append(time.perf_counter() - w0)
    return {"setting": setting, "model": arch, "steps": steps, "batch_size": batch_size,
            "seconds_per_step": statistics.median(ts), "seconds_per_step_mean": statistics.mean(ts),
            "process_cpu_seconds_per_step": (time.process_time() - c0) / steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    from effdata.data import load_dataset
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    steps, warmup = (args.steps, args.warmup) if gpu else (min(args.steps, 3), min(args.warmup, 1))
    if not gpu: torch.set_num_threads(1)
    cifar = load_dataset("cifar10")
    cifar = cifar.subset(np.sort(np.random.default_rng(0).choice(len(cifar), 4096, replace=False)))
    mnist = load_dataset("mnist")
    rows = []
    t0 = time.perf_counter()
    for arch, data, kw in (("conv4", cifar, {}), ("mlp", mnist, {"hidden": (512, 512)})):
        for setting in SETTINGS:
            r = time_steps(arch, data, device, setting, steps, warmup, **kw)
            rows.append(r); print(r, flush=True)
    for arch in ("conv4", "mlp"):
        base = next(r for r in rows if r["model"] == arch and r["setting"].startswith("baseline"))
        for r in rows:
            if r["model"] == arch: r["speedup_vs_sort"] = base["seconds_per_step"] / r["seconds_per_step"]
    label = "gpu" if gpu else "cpu-fallback"
    res = {"label": label, "device": torch.cuda.get_device_name(0) if gpu else "cpu (1 thread): a check of the script only",
           "rows": rows, "seconds": time.perf_counter() - t0, "machine": machine(None if gpu else 1),
           "training_speedup_conv4_gpu" if gpu else "training_speedup_conv4_cpu_fallback":
               next(r["speedup_vs_sort"] for r in rows if r["model"] == "conv4" and r["setting"].startswith("improved"))}
    name = "mpt_gpu" if gpu else "mpt_gpu_cpu_fallback"
    table = [{"what": f"{r['model']}: {r['setting']}", "value": f"{1e3 * r['seconds_per_step']:.2f} ms/step",
              "note": f"{r['speedup_vs_sort']:.2f}x vs sort every step; {r['steps']} steps, batch {r['batch_size']}"} for r in rows]
    write(name, res, f"Multi-prize tickets: biprop training step time ({label}: {res['device']})", table,
          "Median wall-clock per training step (synchronised), kept 0.1, Conv4 x1 on 4096 CIFAR-10 images and the "
          "784-512-512-10 MLP on MNIST; the improved row uses the global threshold and mask refresh every 2 steps "
          "without the kept schedule (so every setting keeps the same count from the first step).")
    print((RESULTS / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
