#!/usr/bin/env bash
# Method 1 on a GPU (issue 12): the CIFAR-10 DDPM preset (cifar10_paper) on the CIFAR-10 subset, full data against a
# Gaussian coreset at 0.3 at equal epochs, bf16 mixed precision; writes bench/results/diffusion_gpu.{json,md}, labelled
# "gpu". Fits in under 10 minutes on one H200-class GPU (DIFF_BUDGET caps the full run's wall time).
#   bash bench/gpu/diffusion.sh                               # on the GPU machine
#   DIFF_OUT=diffusion_cpu_check bash bench/gpu/diffusion.sh  # without a GPU: a few steps on the digits, labelled cpu-fallback
set -euo pipefail
source "$(dirname "$0")/env.sh"
timeout 570 python bench/gpu/diffusion.py
