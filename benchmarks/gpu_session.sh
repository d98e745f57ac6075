#!/usr/bin/env bash
# The GPU measurements in slices that each fit one device call (at most 9 minutes of work under the
# 10-minute limit of a call). Written for the lent H200; see benchmarks/README.md ("GPU session").
#
#   bash benchmarks/gpu_session.sh --dry-run all          # list every slice, its estimate, what it needs
#   bash benchmarks/gpu_session.sh --out "$OUT" headline  # one slice (the first one to run on a fresh machine)
#   bash benchmarks/gpu_session.sh --out DIR SLICE...     # several slices, in the order given
#
# Options: --out DIR (default $OUT, else benchmarks/results/gpu-session): one <slice>.json per slice, written
# after every cell (a slice cut off at its limit keeps what it measured) and session.jsonl (one line per
# slice: start, seconds, exit code). --summary also writes the markdown + PNG summary (needs matplotlib; by
# default summaries are made on the development machine with `deploykit bench-summary`). --dry-run checks
# nothing and runs nothing: it prints the slices with their estimated minutes and commands.
#
# Preconditions are checked before a slice starts, each failing fast with one line and exit 3: CUDA visible
# to torch; for slices with ONNX Runtime cells, onnxruntime with the CUDAExecutionProvider (stage
# onnxruntime-gpu first: ../shared/gpu/README.md); pytest for the tests slice; matplotlib with --summary.
# TensorRT cannot be installed on the lent machines: trt cells are recorded as skipped with that reason.
#
# Estimates are minutes of wall time on an H100/H200-class machine with 16 CPU cores, cold caches (ONNX export
# and Inductor compilation included), judged from model sizes -- no GPU run has measured them yet: session.jsonl
# records the real figures. Every slice is also cut at LIMIT_S (default 530 s) by `timeout`.
set -euo pipefail

PY=${PYTHON:-python3}
LIMIT_S=${LIMIT_S:-530}
MAX_MIN=9
ZOO="alexnet vgg16 nin googlenet resnet18 resnet50 densenet121"
# Per-cell budget: 7 repeats as the regression rule wants, a cell at most ~7 s (warm-up 3 s + timed 4 s).
TIMING="--iterations 50 --repeats 7 --warmup 10 --warmup-seconds 3 --cell-seconds 4"

# name | estimated minutes | needs (cuda, ort, pytest) | what it runs
SLICES=(
  "headline|6|cuda,ort|bench resnet18 --backend eager,channels-last,cuda-graph,compile,ort,trt --precision fp16 --batch 1,64 --compile-mode default"
  "headline-autotune-b1|5|cuda|bench resnet18 --backend compile --precision fp16 --batch 1 --compile-mode max-autotune"
  "headline-autotune-b64|5|cuda|bench resnet18 --backend compile --precision fp16 --batch 64 --compile-mode max-autotune"
  "tests|4|cuda,ort,pytest|pytest"
  "torch-fp16|7|cuda|bench $ZOO --backend eager,channels-last,cuda-graph --precision fp16 --batch 1,64"
  "torch-fp32|7|cuda|bench $ZOO --backend eager,channels-last,cuda-graph --precision fp32 --batch 1,64"
  "ort-fp16-a|6|cuda,ort|bench alexnet vgg16 nin googlenet --backend ort --precision fp16 --batch 1,64"
  "ort-fp16-b|6|cuda,ort|bench resnet18 resnet50 densenet121 --backend ort --precision fp16 --batch 1,64"
  "ort-fp32-a|6|cuda,ort|bench alexnet vgg16 nin googlenet --backend ort --precision fp32 --batch 1,64"
  "ort-fp32-b|6|cuda,ort|bench resnet18 resnet50 densenet121 --backend ort --precision fp32 --batch 1,64"
  "compile-alexnet|4|cuda|bench alexnet --backend compile --precision fp16 --batch 1,64 --compile-mode max-autotune"
  "compile-nin|4|cuda|bench nin --backend compile --precision fp16 --batch 1,64 --compile-mode max-autotune"
  "compile-vgg16-b1|5|cuda|bench vgg16 --backend compile --precision fp16 --batch 1 --compile-mode max-autotune"
  "compile-vgg16-b64|5|cuda|bench vgg16 --backend compile --precision fp16 --batch 64 --compile-mode max-autotune"
  "compile-googlenet-b1|6|cuda|bench googlenet --backend compile --precision fp16 --batch 1 --compile-mode max-autotune"
  "compile-googlenet-b64|6|cuda|bench googlenet --backend compile --precision fp16 --batch 64 --compile-mode max-autotune"
  "compile-resnet50-b1|6|cuda|bench resnet50 --backend compile --precision fp16 --batch 1 --compile-mode max-autotune"
  "compile-resnet50-b64|6|cuda|bench resnet50 --backend compile --precision fp16 --batch 64 --compile-mode max-autotune"
  "compile-densenet121-b1|8|cuda|bench densenet121 --backend compile --precision fp16 --batch 1 --compile-mode max-autotune"
  "compile-densenet121-b64|8|cuda|bench densenet121 --backend compile --precision fp16 --batch 64 --compile-mode max-autotune"
)
TEST_FILES="tests/bench tests/backends tests/report tests/test_env.py tests/export/test_onnx_export.py"

die() { echo "gpu_session: $*" >&2; exit "${2:-2}"; }
field() { local IFS='|'; read -r -a f <<<"$1"; echo "${f[$2]}"; }

dry=0 summary=0 out=${OUT:-benchmarks/results/gpu-session}
names=()
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    --summary) summary=1 ;;
    --out) [ $# -ge 2 ] || die "--out needs a folder"; out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) names+=("$1") ;;
  esac
  shift
done
[ ${#names[@]} -gt 0 ] || names=(headline)

selected=()
for n in "${names[@]}"; do
  if [ "$n" = all ]; then selected+=("${SLICES[@]}"); continue; fi
  found=""
  for s in "${SLICES[@]}"; do [ "$(field "$s" 0)" = "$n" ] && found=$s; done
  [ -n "$found" ] || die "unknown slice '$n'; slices: $(for s in "${SLICES[@]}"; do printf '%s ' "$(field "$s" 0)"; done)"
  selected+=("$found")
done

command_for() {  # the command line of a slice
  local name=$1 what=$2
  if [ "$what" = pytest ]; then
    echo "$PY -m pytest -m gpu -q -p no:cacheprovider $TEST_FILES"
  else
    local extra=""
    [ "$summary" = 1 ] && extra=" --summary $out"
    echo "$PY -m deploykit $what --device cuda $TIMING --output $out/$name.json$extra"
  fi
}

if [ "$dry" = 1 ]; then
  total=0
  echo "slices (estimated minutes, cold caches; each cut at ${LIMIT_S}s; at most ${MAX_MIN} min each):"
  for s in "${selected[@]}"; do
    name=$(field "$s" 0) est=$(field "$s" 1) needs=$(field "$s" 2) what=$(field "$s" 3)
    [ "$est" -le "$MAX_MIN" ] || die "slice $name is estimated at $est min, over the ${MAX_MIN}-minute limit"
    total=$((total + est))
    printf '%-24s ~%s min  needs %-16s %s\n' "$name" "$est" "$needs" "$(command_for "$name" "$what")"
  done
  echo "total ~${total} min of device time (plus machine start-up and staging); run the first slice first"
  exit 0
fi

# ------------------------------------------------------------------------------------------- preconditions
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
need=","
for s in "${selected[@]}"; do need+="$(field "$s" 2),"; done
$PY - "$need" "$summary" <<'EOF' || exit 3
import importlib.util, sys
need, summary = sys.argv[1].split(","), sys.argv[2] == "1"
def fail(msg):
    print(f"gpu_session: {msg}", file=sys.stderr)
    sys.exit(3)
try:
    import torch
except ImportError:
    fail("torch is not importable with this python")
if "cuda" in need and not torch.cuda.is_available():
    fail(f"no CUDA device visible to torch {torch.__version__} (CUDA_VISIBLE_DEVICES={__import__('os').environ.get('CUDA_VISIBLE_DEVICES')!r})")
try:
    import deploykit.cli.app  # noqa: F401
except Exception as exc:
    fail(f"deploykit does not import here: {type(exc).__name__}: {exc}")
if "ort" in need:
    try:
        import onnxruntime as ort
    except ImportError:
        fail("onnxruntime is not importable: stage onnxruntime-gpu into /tmp/site first (../shared/gpu/README.md)")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        fail(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (CPU-only package): stage onnxruntime-gpu "
             "into /tmp/site first (../shared/gpu/README.md)")
if "pytest" in need and importlib.util.find_spec("pytest") is None:
    fail("pytest is not installed: the tests slice needs it")
if summary and importlib.util.find_spec("matplotlib") is None:
    fail("--summary needs matplotlib, which is not installed: drop --summary (make summaries with bench-summary later)")
print(f"preconditions ok: {torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA {torch.version.cuda}")
EOF
if ! $PY -c "import tensorrt" 2>/dev/null; then
  echo "note: TensorRT is not installed here: trt cells will be recorded as skipped"
fi
mkdir -p "$out"
nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv \
  2>/dev/null || true

# ---------------------------------------------------------------------------------------------------- run
status=0
for s in "${selected[@]}"; do
  name=$(field "$s" 0) est=$(field "$s" 1) what=$(field "$s" 3)
  cmd=$(command_for "$name" "$what")
  echo "== $name (~$est min, cut at ${LIMIT_S}s): $cmd"
  t0=$(date +%s) start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  rc=0
  # shellcheck disable=SC2086  # the command is a word list on purpose
  timeout -k 10 "$LIMIT_S" $cmd || rc=$?
  secs=$(( $(date +%s) - t0 ))
  printf '{"slice": "%s", "start_utc": "%s", "seconds": %d, "estimate_min": %d, "exit_code": %d, "timed_out": %s}\n' \
    "$name" "$start" "$secs" "$est" "$rc" "$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo true || echo false)" \
    >> "$out/session.jsonl"
  echo "== $name: exit $rc after ${secs}s"
  [ "$rc" = 0 ] || status=$rc
done
exit "$status"
