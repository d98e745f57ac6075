#!/usr/bin/env bash
# Run one part of the H100 zoo measurements on the lent GPU machine (see benchmarks/README.md).
#
# From the project root, on the GPU machine, after onnxruntime-gpu was staged into /tmp/site
# (../shared/gpu/README.md), one device call per part (each fits the 10-minute limit):
#
#   bash benchmarks/gpu_session.sh tests        # the gpu-marked tests of bench / backends / report
#   bash benchmarks/gpu_session.sh torch        # eager, channels-last, cuda-graph: 7 models x fp32,fp16 x b1,64
#   bash benchmarks/gpu_session.sh ort-fp16     # ONNX Runtime CUDA (io-binding), fp16
#   bash benchmarks/gpu_session.sh ort-fp32     # ONNX Runtime CUDA (io-binding), fp32
#   bash benchmarks/gpu_session.sh compile-b1   # torch.compile max-autotune, fp16, batch 1 (7 models)
#   bash benchmarks/gpu_session.sh compile-b64  # torch.compile max-autotune, fp16, batch 64 (resnet50, vgg16)
#
# Each part writes $OUT/<part>.json (+ .md/.png summary); merge them here afterwards with
#   deploykit bench-merge <parts...> -o benchmarks/results/gpu-zoo-nvidia-h100-80gb-hbm3.json
set -euo pipefail
part=${1:?part: tests | torch | ort-fp16 | ort-fp32 | compile-b1 | compile-b64}
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-out}
mkdir -p "$OUT"
ZOO="alexnet vgg16 nin googlenet resnet18 resnet50 densenet121"
# Per-cell budget sized so a part fits one 10-minute call; R = 7 repeats as the regression rule wants.
TIMING=(--iterations 50 --repeats 7 --warmup 10 --warmup-seconds 3 --cell-seconds 4)
bench() { timeout 570 python3 -m deploykit bench "$@" --device cuda "${TIMING[@]}" --output "$OUT/$part.json" --summary "$OUT"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv
case $part in
  tests) python3 -m pytest -m gpu tests/bench tests/backends/test_torch_backends.py tests/report -q -p no:cacheprovider ;;
  torch) bench $ZOO --backend eager,channels-last,cuda-graph --precision fp32,fp16 --batch 1,64 ;;
  ort-fp16) bench $ZOO --backend eager,ort --precision fp16 --batch 1,64 ;;
  ort-fp32) bench $ZOO --backend eager,ort --precision fp32 --batch 1,64 ;;
  compile-b1) bench $ZOO --backend eager,compile --precision fp16 --batch 1 --compile-mode max-autotune ;;
  compile-b64) bench resnet50 vgg16 --backend eager,compile --precision fp16 --batch 64 --compile-mode max-autotune ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
