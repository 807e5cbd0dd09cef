"""GPU check of method 1 (issue 12): the CIFAR-10 DDPM preset on the CIFAR-10 subset, full data against a Gaussian
coreset at kept 0.3 trained for the same number of epochs (0.3 x the full run's steps), plus the full run stopped at
that step count (equal cost), mixed precision (bf16). FD / precision / recall in the feature space of the zoo's
`cifar10_cnn` classifier (no Inception weights offline), N samples by 50-step DDIM against the train split.

Run by bench/gpu/diffusion.sh. Without a GPU it runs a few steps on the digits with a tiny U-Net and labels the result
"cpu-fallback": a check that the script works, not a benchmark. Environment:
  DIFF_STEPS   full-run steps (default 3000 on a GPU, 20 on the CPU)
  DIFF_BUDGET  wall seconds allowed for the full run; it stops early (and says so) past it (default 300)
  DIFF_OUT     result name under bench/results (default diffusion_gpu)
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
    from effdata.data import load_dataset
    from effdata.diffusion import DDPMTrainer, get_config
    from effdata.features import encoder, extract
    from effdata.metrics import frechet_distance, precision_recall
    from effdata.selection import coreset
    gpu = torch.cuda.is_available()
    torch.backends.cudnn.benchmark = True
    if gpu:
        name, cfg, bs, n_samples, mp = "cifar10", get_config("cifar10_paper"), 128, 2000, "bf16"
        steps = int(os.environ.get("DIFF_STEPS", 3000))
    else:
        name, bs, n_samples, mp = "digits", 64, 200, "no"
        cfg = get_config("digits_small", block_out_channels=(16, 32), attention_resolutions=(4,))
        steps = int(os.environ.get("DIFF_STEPS", 20))
    budget = float(os.environ.get("DIFF_BUDGET", 300))
    train = load_dataset(name)
    enc = encoder("cifar10_cnn") if gpu else encoder("pixels", dataset=train)
    dev = "cuda" if gpu else "cpu"
    real = extract(enc, train, device=dev, progress=False)

    def score(tr, seed=0):
        sync(); t0 = time.perf_counter()
        fake = tr.sample(n_samples, steps=50, seed=seed)
        from effdata.features import encode
        ff = encode(fake, enc, device=dev)
        sync()
        return {"fd": frechet_distance(real, ff), **precision_recall(real, ff, device=dev), "sample_seconds": time.perf_counter() - t0}

    rows, out = [], {"dataset": name, "config": cfg.name, "batch_size": bs, "mixed_precision": mp, "n_samples": n_samples,
                     "label": "gpu" if gpu else "cpu-fallback"}
    k = max(1, round(0.3 * steps))
    # full data, scored at 0.3 S (equal cost to the coreset run) and at the end
    full = DDPMTrainer(train, cfg, steps=steps, batch_size=bs, mixed_precision=mp, progress=False, seed=0, device=dev)
    sync(); t0 = time.perf_counter()
    full.fit(max_steps=k); sync(); t_k = time.perf_counter() - t0
    stopped = score(full)
    t1 = time.perf_counter()
    while full.step < steps and t_k + time.perf_counter() - t1 < budget:
        full.fit(max_steps=min(steps, full.step + 200))
    sync(); t_full = t_k + time.perf_counter() - t1
    rows.append({"run": "full", "kept": 1.0, "steps": full.step, "train_seconds": t_full, **score(full)})
    rows.append({"run": "full stopped at 0.3 S", "kept": 1.0, "steps": k, "train_seconds": t_k, **stopped})
    # the coreset at the same epochs: 0.3 of the full run's (completed) steps
    t0 = time.perf_counter()
    sel = coreset(train, 0.3, score="gaussian", encoder="pixels", seed=0, device=dev, progress=False)
    t_sel = time.perf_counter() - t0
    k_done = max(1, round(0.3 * full.step))
    core = DDPMTrainer(train, cfg, steps=k_done, selection=sel, batch_size=bs, mixed_precision=mp, progress=False, seed=0, device=dev)
    sync(); t0 = time.perf_counter(); core.fit(); sync(); t_core = time.perf_counter() - t0
    rows.append({"run": "gaussian coreset 0.3 (same epochs)", "kept": 0.3, "steps": core.step, "train_seconds": t_core,
                 "selection_seconds": t_sel, **score(core)})
    out.update(rows=rows, full_steps_planned=steps, full_stopped_by_budget=full.step < steps,
               speedup_same_epochs=t_full / (t_core + t_sel), fd_ratio_coreset_vs_full=rows[2]["fd"] / rows[0]["fd"],
               fd_ratio_coreset_vs_full_same_steps=rows[2]["fd"] / rows[1]["fd"], machine=machine())
    write(os.environ.get("DIFF_OUT", "diffusion_gpu"), out,
          f"Method 1 on {'a GPU' if gpu else 'the CPU (fallback check, not a benchmark)'}: full vs coreset 0.3 at equal epochs",
          [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
          f"Label: {out['label']}. {cfg.name} U-Net, batch {bs}, mixed precision {mp}, FD on {n_samples} samples "
          f"({'cifar10_cnn' if gpu else 'pixel-projection'} features). Training seconds are wall-clock with CUDA synchronised; "
          f"selection counted in the speed-up ({out['speedup_same_epochs']:.2f}x). One seed: a check, not a headline figure.")
    print(out)


if __name__ == "__main__":
    main()
