#!/usr/bin/env bash
# Multi-prize tickets on a GPU: time biprop training steps (sort every step vs kthvalue vs the improved trainer) and
# write bench/results/mpt_gpu.json + .md, labelled "gpu" (without a GPU: a 3-step CPU check of the script, written to
# mpt_gpu_cpu_fallback.json). Unattended, under 10 minutes. Run from anywhere:
#     bash bench/gpu/mpt.sh [--steps 150]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [ -z "${EFFDATA_DATA:-}" ]; then
  for d in shared/data ../shared/data; do [ -d "$d/cifar10" ] && export EFFDATA_DATA="$(cd "$d" && pwd)" && break; done
fi
: "${EFFDATA_DATA:?set EFFDATA_DATA to the data folder (cifar10/, mnist/ ...)}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 540 python bench/mpt_gpu.py "$@"
