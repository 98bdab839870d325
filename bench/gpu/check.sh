#!/usr/bin/env bash
# FP16 vs fp32 accuracy and throughput of the encoder on a GPU, torch only (no TensorRT, no
# internet): see bench/gpu/check.py. Usage:
#   bench/gpu/check.sh [--model-dir DIR] [--seconds 2] [--titles demo/data/items.csv]
# PYTHON picks the interpreter (default python3); it needs torch with CUDA and numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python3}" bench/gpu/check.py "$@"
