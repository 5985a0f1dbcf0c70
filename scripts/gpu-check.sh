#!/usr/bin/env bash
# Checks every kernel against its float64 reference on an NVIDIA GPU and runs the GPU benchmarks, beside PyTorch on
# the same GPU where one is installed. Made for a machine without .NET: scripts/gpu-bundle.sh first (lskd as one
# trimmed self-contained file in .gpu/bin, Fashion-MNIST packed in .gpu/data), then, from the repository root:
#   scripts/gpu-check.sh [path/to/lskd] [results folder] [steps...]
# Steps: check train losses gemm tf32 layers analysis profile report (default: all of these, about 9 minutes;
# report is `lskd bench report` as one report.tgz: JSON per case and machine.json with GPU, driver, PyTorch), and study
# (only when named: the paper preset's ResNet-20 teacher, 30 epochs with alpha 0.1 on all 60,000 images, and ResNet-8
# students of it at T = 1 and T = 4, within 10 minutes). Each step has its own time limit and a failed step does not
# stop the others; logs go to the results folder, machine-readable results (JSON lines) into results.jsonl.
set -u
LSKD=${1:-.gpu/bin/lskd}
RESULTS=${2:-${OUT:-gpu-results}}
shift $(( $# < 2 ? $# : 2 ))
STEPS=${*:-check train losses gemm tf32 layers analysis profile report}
DEVICE=${LSKD_DEVICE:-cuda}
mkdir -p "$RESULTS"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 NO_COLOR=1 COLUMNS=160
# The GPU peer: the first python3 on PATH that has a CUDA build of PyTorch (override with LSKD_PEER_PYTHON).
if [ -z "${LSKD_PEER_PYTHON:-}" ] && command -v python3 >/dev/null; then export LSKD_PEER_PYTHON=$(command -v python3); fi
PEER=--peer
[ "$DEVICE" = cuda ] && ! "${LSKD_PEER_PYTHON:-/usr/bin/python3}" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && PEER=

status=0
step() { # step NAME SECONDS command...
    local name=$1 limit=$2; shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local t0=$SECONDS
    echo "=== $name: $*" | tee -a "$RESULTS/steps.txt"
    timeout "$limit" "$@" > "$RESULTS/$name.txt" 2>&1
    local rc=$?
    tail -n 60 "$RESULTS/$name.txt"
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$RESULTS/steps.txt"
    [ $rc -ne 0 ] && status=1
    return 0
}

# At most 8 result files come back from a lent machine: the machine and `lskd info` go into steps.txt.
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1; uname -a
  echo "$(nproc) CPU cores"; timeout 60 "$LSKD" info 2>&1; } | tee "$RESULTS/steps.txt"
step check 150 "$LSKD" check --device "$DEVICE" --verbose
step train 150 "$LSKD" bench train --device "$DEVICE" --steps 10 $PEER
step losses 60 "$LSKD" bench losses --device "$DEVICE" --min-time 0.3 $PEER
GEMM_SHAPES=64x64x64,256x256x256,1024x1024x1024,2048x2048x2048,4096x4096x4096,100352x64x288
step gemm 90 "$LSKD" bench gemm --device "$DEVICE" --min-time 0.3 --shapes $GEMM_SHAPES $PEER
step tf32 90 "$LSKD" bench gemm --device "$DEVICE" --min-time 0.3 --shapes $GEMM_SHAPES --tf32 $PEER
step layers 120 "$LSKD" bench layers --device "$DEVICE" --min-time 0.1 --all-algorithms
step analysis 90 "$LSKD" bench analysis --device "$DEVICE" --runs 2 $PEER
step profile 60 "$LSKD" bench train --device "$DEVICE" --models resnet8 --steps 3 --profile
report() { "$LSKD" bench report --device "$DEVICE" --quick --out "$RESULTS/report" && tar -czf "$RESULTS/report.tgz" -C "$RESULTS" report && rm -rf "$RESULTS/report"; }
DATA=${LSKD_DATA:-.gpu/data}
study() {
    "$LSKD" train-teacher --model resnet20 --epochs 30 --alpha 0.1 --data-dir "$DATA" --device "$DEVICE" --out "$RESULTS/study" &&
    for t in 1 4; do
        "$LSKD" distill --teacher "$RESULTS/study/teacher-resnet20-a0.1-s1.safetensors" --model resnet8 --width 1 --temperature $t \
            --epochs 30 --data-dir "$DATA" --device "$DEVICE" --out "$RESULTS/study" || return 1
    done
    tar -czf "$RESULTS/study.tgz" -C "$RESULTS" study && rm -rf "$RESULTS/study"
}
export -f report study; export LSKD DEVICE RESULTS DATA
step report 120 bash -c report
step study 580 bash -c study
# At most 8 files come back: the step logs travel as one logs.tgz beside steps.txt and the .tgz results.
( cd "$RESULTS" && logs=$(ls *.txt 2>/dev/null | grep -v '^steps.txt$') && [ -n "$logs" ] && tar -czf logs.tgz $logs && rm -f $logs )
cat "$RESULTS/steps.txt"
exit $status
