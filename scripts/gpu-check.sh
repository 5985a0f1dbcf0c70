#!/usr/bin/env bash
# Checks every kernel against its float64 reference on an NVIDIA GPU and runs the GPU benchmarks, beside PyTorch on
# the same GPU where one is installed. Made for a machine without .NET: publish lskd as one self-contained file first
#   dotnet publish src/Experiments -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true \
#     -p:EnableCompressionInSingleFile=true -o .gpu/bin
# then run, from the repository root:  scripts/gpu-check.sh [path/to/lskd] [results folder] [steps...]
# Steps: check train losses gemm layers analysis profile (default: all). Each step has its own time limit and a failed
# step does not stop the others; logs go to the results folder.
set -u
LSKD=${1:-.gpu/bin/lskd}
RESULTS=${2:-${OUT:-gpu-results}}
shift $(( $# < 2 ? $# : 2 ))
STEPS=${*:-check train losses gemm layers analysis profile}
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
step gemm 60 "$LSKD" bench gemm --device "$DEVICE" --min-time 0.3 $PEER
step layers 60 "$LSKD" bench layers --device "$DEVICE" --min-time 0.1
step analysis 90 "$LSKD" bench analysis --device "$DEVICE" --runs 2 $PEER
step profile 60 "$LSKD" bench train --device "$DEVICE" --models resnet8 --steps 3 --profile
cat "$RESULTS/steps.txt"
exit $status
