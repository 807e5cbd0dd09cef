#!/usr/bin/env bash
# Single-GPU throughput of the shared Trainer with and without mixed precision, for DDPMTrainer (the paper's
# CIFAR-10 U-Net, `cifar10_paper`) and ATTrainer (PGD-10 adversarial training of a CIFAR ResNet-18).
# Writes bench/results/scaleout_gpu.json and .md, labelled with the GPU's name. Unattended, under 10 minutes:
# each (trainer, precision) is its own process (accelerate sets the precision once per process) with its own
# time limit, and a failed or timed-out run is recorded as such instead of stopping the others.
#
#   bash bench/gpu/scaleout.sh                     # on a GPU machine, from anywhere
#   SCALEOUT_STEPS=3 SCALEOUT_OUT=/tmp/x.json bash bench/gpu/scaleout.sh   # the CPU fallback, a few steps
#
# Without a GPU it falls back to the CPU (digits, tiny models, precisions 'no' and 'bf16'; fp16 needs a GPU) and
# labels the result "cpu-fallback": a check that the script runs, not a benchmark. Environment:
#   SCALEOUT_STEPS  timed steps per run (default 100 on a GPU, 3 on the CPU); one warm-up step comes first
#   SCALEOUT_OUT    result file (default bench/results/scaleout_gpu.json; the .md goes beside it)
#   SCALEOUT_LIMIT  seconds allowed per run (default 90)
#   EFFDATA_DATA    the data folder (CIFAR-10 there is used; without it, random 32x32 images of its shape)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
GPU=$(python -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$GPU" = 1 ]; then PRECISIONS="no bf16 fp16"; STEPS=${SCALEOUT_STEPS:-100}; else PRECISIONS="no bf16"; STEPS=${SCALEOUT_STEPS:-3}; fi
LIMIT=${SCALEOUT_LIMIT:-90}
OUT=${SCALEOUT_OUT:-bench/results/scaleout_gpu.json}

read -r -d '' RUN <<'PY'
import json, sys, time
import torch
from effdata.core import seed_everything
trainer, mp, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
gpu = torch.cuda.is_available()
torch.backends.cudnn.benchmark = True
if gpu:
    from effdata.data import ImageDataset, data_root, load_dataset
    if (data_root()/"cifar10").exists(): data = load_dataset("cifar10")
    else:   # no data folder: random images of CIFAR-10's shape (throughput does not depend on the pixels)
        g = torch.Generator().manual_seed(0)
        data = ImageDataset(torch.randint(0, 256, (8192, 3, 32, 32), generator=g, dtype=torch.uint8),
                            torch.arange(8192) % 10, [str(i) for i in range(10)], name="cifar10")
else:
    from effdata.data import load_dataset
    data = load_dataset("digits")
common = dict(mixed_precision=mp, progress=False, seed=0, log_every=10**9)
if trainer == "ddpm":
    from effdata.diffusion import DDPMTrainer, get_config
    cfg = get_config("cifar10_paper") if gpu else get_config("digits_small", block_out_channels=(8, 16),
                     attention_resolutions=(), norm_num_groups=8, layers_per_block=1)
    bs = 128 if gpu else 32
    tr = DDPMTrainer(data, cfg, steps=steps + 1, batch_size=bs, **common)
    what = f"DDPMTrainer {cfg.name} U-Net, batch {bs}"
else:
    from effdata.at import ATTrainer
    from effdata.models import MLP, cifar_resnet18
    model = cifar_resnet18() if gpu else MLP(hidden=(32,))
    bs = 128 if gpu else 40
    n = min(len(data), bs * (steps + 1)) // bs * bs       # whole batches only
    tr = ATTrainer(model, data.subset(range(n)), objective="pgd", steps=10 if gpu else 2, eps=8/255,
                   epochs=-(-(steps + 1) // (n // bs)),
                   batch_size=bs, lr=0.1, augment=gpu, **common)
    what = f"ATTrainer PGD-{tr.objective.steps} {type(model).__name__}, batch {bs}"
seed_everything(0)
tr.fit(max_steps=1)                      # warm-up (cuDNN autotuning, allocator)
if gpu: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t0, c0 = time.perf_counter(), time.process_time()
tr.fit(max_steps=1 + steps)
if gpu: torch.cuda.synchronize()
wall, done = time.perf_counter() - t0, tr.step - 1
row = dict(trainer=trainer, mixed_precision=mp, what=what, steps=done, samples=done * bs, wall_s=round(wall, 3),
           cpu_s=round(time.process_time() - c0, 3), samples_per_second=round(done * bs / wall, 1),
           final_loss=round(tr.history[-1], 5), peak_gpu_mib=round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None)
json.dump(row, open(out, "w")); print(row)
PY

for trainer in ddpm at; do
  for mp in $PRECISIONS; do
    f="$TMP/$trainer-$mp.json"
    timeout "$LIMIT" python -c "$RUN" "$trainer" "$mp" "$STEPS" "$f" > "$TMP/$trainer-$mp.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || [ ! -s "$f" ]; then
      python - "$trainer" "$mp" "$rc" "$TMP/$trainer-$mp.log" "$f" <<'PY'
import json, sys
t, mp, rc, log, f = sys.argv[1:]
tail = open(log).read()[-600:]
json.dump(dict(trainer=t, mixed_precision=mp, error=("timed out" if rc == "124" else f"exit {rc}"), log_tail=tail), open(f, "w"))
PY
    fi
    tail -n 1 "$TMP/$trainer-$mp.log"
  done
done

python - "$TMP" "$OUT" "$STEPS" <<'PY'
import json, sys, time
from pathlib import Path
sys.path.insert(0, "bench")
import torch
from _common import machine, table
tmp, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(p.read_text()) for p in sorted(tmp.glob("*.json"))]
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
res = {"label": "gpu" if gpu else "cpu-fallback", "gpu": gpu, "machine": machine(), "steps": steps, "rows": rows,
       "samples_per_second": {r["trainer"]: {} for r in rows}}
for r in rows: res["samples_per_second"][r["trainer"]][r["mixed_precision"]] = r.get("samples_per_second")
out.parent.mkdir(parents=True, exist_ok=True)
from effdata.core import write_json
write_json(out, res)
keys = ("trainer", "mixed_precision", "samples_per_second", "wall_s", "steps", "peak_gpu_mib", "final_loss", "error")
md = [f"# Scale-out: one {'GPU, ' + gpu if gpu else 'CPU (fallback check, not a benchmark)'}, with and without mixed precision", "",
      table([{k: r.get(k) for k in keys} for r in rows]), "",
      "; ".join(sorted({r['what'] for r in rows if 'what' in r})) + f". {steps} timed steps after one warm-up step.", "",
      f"Machine: {res['machine']['cpu']}, GPU {gpu}; torch {res['machine']['torch']}, effdata {res['machine']['effdata']} "
      f"({res['machine']['commit']}), {res['machine']['date']}."]
out.with_suffix(".md").write_text("\n".join(md) + "\n")
print(out)
PY
