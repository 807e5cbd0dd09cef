#!/usr/bin/env bash
# Method 2 on a GPU (issue 13): PreAct-ResNet-18 on the CIFAR-10 subset (8152 train / 1017 test images), full PGD-AT
# against Adv-GRAD-MATCH 0.3 against Fast AT (FGSM-RS, cyclic LR), bf16 mixed precision; writes
# bench/results/at_gpu.{json,md}, labelled "gpu". Under 10 minutes on one H200 (AT_BUDGET caps each run's wall time).
#   bash bench/gpu/at.sh                           # on the GPU machine
#   AT_OUT=at_gpu_cpu_check bash bench/gpu/at.sh   # without a GPU: a few steps on 256 images, labelled cpu-fallback
set -euo pipefail
source "$(dirname "$0")/env.sh"
timeout 570 python bench/gpu/at.py "$@"
