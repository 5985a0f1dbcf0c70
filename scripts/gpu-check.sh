#!/usr/bin/env bash
# The one-call GPU check: every kernel against its float64 reference and the GPU benchmarks beside PyTorch on the
# same GPU, ordered by value and each step under its own time limit (the limits sum to 450 s, within one 600 s call
# with room to pack). After every step each figure is one JSON line in $OUT/results.jsonl (device, driver, PyTorch,
# case, ours, peer's, ratio) and the step logs are re-packed into $OUT/logs.tgz, so a run killed at any point returns
# everything finished before it, in 3 files (steps.txt, results.jsonl, logs.tgz; at most 8 come back).
#
#   scripts/gpu-check.sh [--device cuda|ilgpu-cpu] [--lskd PATH] [--out DIR] [--dry-run] [STEP...]
#
# Made for a machine without .NET: scripts/gpu-bundle.sh first (lskd as one self-contained file in .gpu/bin), then on
# the lent machine, from the repository root: scripts/gpu-check.sh. `--device ilgpu-cpu` runs the same steps with
# tiny shapes on ILGPU's CPU accelerator (a run-through of the script and its kernels on any machine, not a
# measurement); `--lskd` may name lskd.dll (run with dotnet). `--dry-run` prints the steps, their limits and commands.
# The study (teacher and students on all of Fashion-MNIST) is a separate call: scripts/gpu-study.sh.
set -u
DEVICE=cuda LSKD= RESULTS=${OUT:-gpu-results} DRY=0 ONLY=
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --lskd) LSKD=$2; shift 2 ;;
        --out) RESULTS=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "gpu-check.sh: unknown option $1" >&2; exit 2 ;;
        *) ONLY="$ONLY $1"; shift ;;
    esac
done
case $DEVICE in cuda|ilgpu-cpu) ;; *) echo "gpu-check.sh: --device must be cuda or ilgpu-cpu, got '$DEVICE'" >&2; exit 2 ;; esac
[ -n "$LSKD" ] || LSKD=.gpu/bin/lskd
case $LSKD in *.dll) RUN=(dotnet "$LSKD") ;; *) RUN=("$LSKD") ;; esac
export DOTNET_CLI_TELEMETRY_OPTOUT=1 NO_COLOR=1 COLUMNS=160

# The steps in order of value: name, limit in seconds, lskd arguments (cuda; then the tiny ones for ilgpu-cpu).
# smoke: is the GPU there, do the fp32 and TF32 GEMMs (every kernel variant, small shapes) match the reference.
J="--jsonl RESULTS_JSONL"
if [ "$DEVICE" = cuda ]; then
    STEPS=(
        "smoke|30|check --op gemm --small $J --device DEVICE"
        "ptx|20|ptx --out RESULTS_WORK/ptx $J"
        "check-gemm-conv|50|check --op gemm conv2d --verbose $J --device DEVICE"
        "gemm|55|bench gemm --shapes 2048x2048x2048,4096x4096x4096,100352x64x288 --min-time 0.3 --peer $J --device DEVICE"
        "tf32|40|bench gemm --shapes 2048x2048x2048,4096x4096x4096 --min-time 0.3 --tf32 --peer $J --device DEVICE"
        "train|70|bench train --steps 10 --peer $J --device DEVICE"
        "losses|25|bench losses --rows 65536 --cols 1000 --min-time 0.3 --peer $J --device DEVICE"
        "analysis|35|bench analysis --runs 2 --peer $J --device DEVICE"
        "check-rest|55|check --skip gemm conv2d $J --device DEVICE"
        "layers|30|bench layers --min-time 0.05 --all-algorithms $J --device DEVICE"
        "report|40|bench report --quick --out RESULTS_WORK/report --device DEVICE"
    )
else
    STEPS=(
        "smoke|30|check --op gemm --small $J --device DEVICE"
        "ptx|20|ptx --out RESULTS_WORK/ptx $J"
        "check-gemm-conv|50|check --op gemm conv2d --small --verbose $J --device DEVICE"
        "gemm|55|bench gemm --shapes 32x32x32,64x48x40 --min-time 0.01 --peer $J --device DEVICE"
        "tf32|40|bench gemm --shapes 32x32x32 --min-time 0.01 --tf32 $J --device DEVICE"
        "train|70|bench train --models resnet8 --batch 2 --steps 1 --warmup 1 $J --device DEVICE"
        "losses|25|bench losses --rows 64 --cols 100 --min-time 0.01 --peer $J --device DEVICE"
        "analysis|35|bench analysis --rows 64 --dim 8 --runs 1 --peer $J --device DEVICE"
        "check-rest|55|check --skip gemm conv2d $J --device DEVICE"
        "layers|30|bench layers --batch 2 --min-time 0.01 --layers shortcut $J --device DEVICE"
        "report|40|bench report --tiny --no-peer --out RESULTS_WORK/report --device DEVICE"
    )
fi

total=0
for s in "${STEPS[@]}"; do total=$(( total + $(cut -d'|' -f2 <<<"$s") )); done
if [ $DRY = 1 ]; then
    echo "gpu-check on $DEVICE: ${#STEPS[@]} steps, limits summing to $total s (each killed 5 s after its limit)"
    i=0
    for s in "${STEPS[@]}"; do
        i=$((i + 1)); IFS='|' read -r name limit args <<<"$s"
        printf '%2d. %-16s %4s s  lskd %s\n' $i "$name" "$limit" "${args//DEVICE/$DEVICE}"
    done
    exit 0
fi

mkdir -p "$RESULTS" || exit 2
RESULTS=$(cd "$RESULTS" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lskd-gpu-check.XXXXXX")   # logs live outside $OUT; $OUT only ever holds 3 files
JSONL="$RESULTS/results.jsonl"
: > "$JSONL"
# The logs, re-packed after every step: written beside, then renamed, so a kill never leaves half an archive.
pack() { tar -czf "$RESULTS/.logs.tgz.part" -C "$WORK" . 2>/dev/null && mv -f "$RESULTS/.logs.tgz.part" "$RESULTS/logs.tgz"; }
child=
trap '[ -n "$child" ] && kill -TERM $child 2>/dev/null; echo "=== interrupted" >> "$RESULTS/steps.txt"; pack; exit 143' TERM INT

# The GPU peer: the first python3 on PATH with a CUDA build of PyTorch (override with LSKD_PEER_PYTHON).
if [ -z "${LSKD_PEER_PYTHON:-}" ] && command -v python3 >/dev/null; then export LSKD_PEER_PYTHON=$(command -v python3); fi
PEER_OK=1
if [ "$DEVICE" = cuda ]; then
    "${LSKD_PEER_PYTHON:-/usr/bin/python3}" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || PEER_OK=0
else
    /usr/bin/python3 -c 'import torch' 2>/dev/null || PEER_OK=0
fi
{
    echo "gpu-check on $DEVICE, $(date -u '+%Y-%m-%d %H:%M UTC'), limits summing to $total s"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    "${LSKD_PEER_PYTHON:-/usr/bin/python3}" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1
    [ $PEER_OK = 1 ] || echo "no PyTorch peer here: the --peer columns are left out"
    uname -a; echo "$(nproc) CPU cores"
    timeout -k 5 20 "${RUN[@]}" info 2>&1
} > "$WORK/machine.txt"
cp "$WORK/machine.txt" "$RESULTS/steps.txt"
pack

status=0
for s in "${STEPS[@]}"; do
    IFS='|' read -r name limit args <<<"$s"
    if [ -n "$ONLY" ]; then case " $ONLY " in *" $name "*) ;; *) continue ;; esac; fi
    args=${args//RESULTS_JSONL/$JSONL}; args=${args//RESULTS_WORK/$WORK}; args=${args//DEVICE/$DEVICE}
    [ $PEER_OK = 1 ] || args=${args//--peer/}
    t0=$SECONDS
    echo "=== $name (limit $limit s): lskd $args" | tee -a "$RESULTS/steps.txt"
    read -r -a argv <<<"$args"
    # -k: a process stuck in a CUDA call ignores TERM; KILL follows 5 s later. In the background, so that a TERM to
    # this script runs its trap at once (bash defers traps until a foreground command ends).
    timeout -k 5 "$limit" "${RUN[@]}" "${argv[@]}" > "$WORK/$name.txt" 2>&1 &
    child=$!
    wait $child
    rc=$?
    tail -n 40 "$WORK/$name.txt"
    case $rc in 124|137) verdict="killed at its $limit s limit" ;; 0) verdict="ok" ;; *) verdict="exit $rc" ;; esac
    echo "=== $name: $verdict after $((SECONDS - t0)) s" | tee -a "$RESULTS/steps.txt"
    [ $rc -ne 0 ] && status=1
    pack
done
echo "=== done: $(wc -l < "$JSONL") result lines in results.jsonl, logs in logs.tgz" | tee -a "$RESULTS/steps.txt"
pack
rm -rf "$WORK"
exit $status
