#!/usr/bin/env bash
# Multi-prize tickets on a GPU: time biprop training steps (sort every step vs kthvalue vs the improved trainer) and
# write bench/results/mpt_gpu.json + .md, labelled "gpu" (without a GPU: a 3-step CPU check of the script, written to
# mpt_gpu_cpu_fallback.json). Unattended, under 10 minutes. Run from anywhere:
#     bash bench/gpu/mpt.sh [--steps 150]
set -euo pipefail
source "$(dirname "$0")/env.sh"
timeout 540 python bench/mpt_gpu.py "$@"
