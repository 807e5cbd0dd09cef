#!/usr/bin/env bash
# CDD-RED on a GPU (issue 15): the paper's DnCNN (17 layers, width 64) on CIFAR-10 pairs (FGSM / PGD-10 / CW-20 against
# cifar10_cnn and cifar10_lenet), DO against CDD-RED with the paper's objective (l1 = per-image norm; gamma = lambda =
# RED_GAMMA, default 25, the CPU benchmark's validation choice), bf16 mixed precision; evaluated on seen cells, AutoAttack and an adaptive PGD through each denoiser. Writes
# bench/results/red_gpu.{json,md}, labelled "gpu". Under 10 minutes on one H200 (RED_BUDGET caps each run's training).
#   bash bench/gpu/red.sh                               # on the GPU machine
#   RED_OUT=red_gpu_cpu_fallback bash bench/gpu/red.sh  # without a GPU: a few steps at 17 x 64 on 64 images, labelled cpu-fallback
set -euo pipefail
source "$(dirname "$0")/env.sh"
timeout 570 python bench/gpu/red.py "$@"
