#!/usr/bin/env bash
# A larger latent-diffusion run for one GPU, in under 10 minutes: the CIFAR-10 subset (8,152 train images, 32x32 RGB),
# a VAE (32x32x3 -> 8x8x4) and a DiT (6 layers, 6 heads x 32, 2x2 patches) from effdata.latent's cifar10_dit preset;
# the full-data latent DM, then Gaussian coreset +/- DRO and a random class-balanced subset at p for p x the full
# steps (equal epochs); FD (and precision/recall) of decoded samples in the features of the pretrained CIFAR-10 CNN of
# the zoo. Writes bench/results/latent_gpu.json labelled with the GPU's name.
#
#   EFFDATA_DATA=/path/to/data bash bench/gpu/latent.sh            # on a GPU machine
#   QUICK=1 bash bench/gpu/latent.sh                                 # a few steps (the CPU fallback check)
#
# Sized (not measured: no GPU was lent to the session that wrote it) at about 21,000 optimisation steps of a
# 4.6 M-parameter DiT plus 2,000 of a 3.8 M-parameter VAE, batch 256; lower STEPS if a run approaches 10 minutes.
# Without a GPU it still runs (on the CPU), writes bench/results/latent_gpu_cpu_fallback.json and labels it so:
# a CPU result is never filed as a GPU one. Settings: VAE_STEPS, STEPS, FRACTIONS, SAMPLES, SEED (environment).
set -euo pipefail
source "$(dirname "$0")/env.sh"
python - <<'PY'
import json, os, sys, tempfile, time
from pathlib import Path
import torch
sys.path.insert(0, "bench")
from _common import RESULTS, machine
from effdata.core import write_json
from effdata.data import load_dataset
from effdata.latent import LatentDDPMTrainer, encode_latents, fit_vae, get_latent_config, latent_reweight
from effdata.features import encoder
from effdata.metrics import generative_scores
from effdata.models import pretrained
from effdata.selection import coreset, random_scores, select

quick = os.environ.get("QUICK") == "1"
gpu = torch.cuda.is_available()
dev = "cuda" if gpu else "cpu"
env = lambda k, d: type(d)(os.environ.get(k, d))
S = dict(preset="cifar10_dit", vae_steps=env("VAE_STEPS", 6 if quick else 2000), steps=env("STEPS", 6 if quick else 5000),
         fractions=[float(f) for f in os.environ.get("FRACTIONS", "0.3" if quick else "0.3 0.5").split()],
         samples=env("SAMPLES", 20 if quick else 5000), sample_steps=5 if quick else 50, dro_steps=4 if quick else 1000,
         seed=env("SEED", 0), device=dev, quick=quick)
if quick: S["sample_steps"] = 3
torch.backends.cuda.matmul.allow_tf32 = True
print(json.dumps(S), flush=True)
t_all = time.perf_counter()
cfg = get_latent_config(S["preset"], batch_size=256 if gpu else 32)
train = load_dataset("cifar10")
work = Path(tempfile.mkdtemp())
clock = lambda: (torch.cuda.synchronize() if gpu else None, time.perf_counter())[1]
t0 = clock(); vae = fit_vae(train, cfg, steps=S["vae_steps"], seed=S["seed"], device=dev, batch_size=256 if gpu else 16,
                            save=work/"vae", progress=False)
z = encode_latents(vae, train, device=dev); t_vae = clock() - t0
clf = pretrained("cifar10_cnn").to(dev).eval()
feat = lambda x: clf.features(x.to(dev)).cpu()
with torch.no_grad(): real = torch.cat([feat(x) for x in train.tensors()[0].split(1000)])    # real features, once
def score(tr):
    x = tr.sample(S["samples"], steps=S["sample_steps"], seed=1000, batch_size=1000)
    return generative_scores(real, x, feat, device=dev)
rows = []
def run(name, p, sel=None, extra=0.0):
    steps = max(1, round(p * S["steps"]))
    t0 = clock()
    tr = LatentDDPMTrainer(train, vae, cfg, latents=z, selection=sel, steps=steps, seed=S["seed"], device=dev,
                           run=work/name, progress=False).fit()
    t = clock() - t0
    sc = score(tr)
    rows.append(dict(method=name.split("@")[0], fraction=p, steps=steps, seconds_train=t, seconds_extra=extra,
                     fd=sc["fd"], precision=sc["precision"], recall=sc["recall"]))
    print(rows[-1], flush=True)
run("full", 1.0)
for p in S["fractions"]:
    t0 = clock(); core = coreset(train, p, encoder="cifar10_cnn", seed=S["seed"], device=dev, progress=False); t_sel = clock() - t0
    rnd = select(random_scores(len(train), S["seed"]), p, train.targets, seed=S["seed"], info={"method": "random"})
    run(f"random@{p}", p, rnd)
    run(f"gaussian@{p}", p, core, t_sel)
    t0 = clock()
    cw = latent_reweight(train, vae, work/"full", cfg, selection=core, latents=z, steps=S["dro_steps"], seed=S["seed"],
                         device=dev, progress=False)
    run(f"gaussian+dro@{p}", p, cw.apply(core, train), t_sel + clock() - t0)
full = rows[0]
for r in rows: r["speedup"] = full["seconds_train"] / (r["seconds_train"] + r["seconds_extra"]); r["fd_ratio_vs_full"] = r["fd"] / full["fd"]
m = machine()
label = f"gpu: {m['gpu']}" if gpu else "cpu fallback (NOT a GPU result)"
out = RESULTS / ("latent_gpu.json" if gpu else "latent_gpu_cpu_fallback.json")
write_json(out, dict(label=label, settings=S, machine=m, vae_seconds=t_vae, total_seconds=time.perf_counter() - t_all,
                     rows=rows, protocol="fixed steps (one seed): full data, then p x its steps on the subsets"))
print(f"{label}: wrote {out} in {time.perf_counter() - t_all:.0f} s")
PY
