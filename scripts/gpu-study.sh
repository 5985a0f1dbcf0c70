#!/usr/bin/env bash
# The study step on a lent GPU, separate from gpu-check.sh so that it has one 10-minute call to itself: the paper
# preset's ResNet-20 teacher (alpha 0.1, batch 128, lr 0.1, cosine, augmentation) on all 60,000 Fashion-MNIST images,
# then ResNet-8 students of it at T = 1 and T = 4, each step under its own limit (summing to 540 s). Every epoch is one
# JSON line in $OUT/study.jsonl as it ends (test top-1, loss, seconds) and the logs and run records are re-packed into
# $OUT/study.tgz after every step, so a run stopped at its limit keeps every finished epoch.
#
#   scripts/gpu-study.sh [--device cuda|ilgpu-cpu|cpu] [--lskd PATH] [--data DIR] [--out DIR] [--epochs N] [--dry-run]
#
# Epochs default to 15 for the teacher and 10 per student (the paper's 30 do not fit one call: the teacher's
# checkpoint must exist before the students start); --epochs N sets both. --data defaults to .gpu/data
# (scripts/gpu-bundle.sh packs it); --device ilgpu-cpu or cpu with --tiny-data runs it through on 512 images.
set -u
DEVICE=cuda LSKD=.gpu/bin/lskd DATA=.gpu/data RESULTS=${OUT:-gpu-results} DRY=0 TEACHER_EPOCHS=15 STUDENT_EPOCHS=10 IMAGES=0
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --lskd) LSKD=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --out) RESULTS=$2; shift 2 ;;
        --epochs) TEACHER_EPOCHS=$2; STUDENT_EPOCHS=$2; shift 2 ;;
        --tiny-data) IMAGES=512; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "gpu-study.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $LSKD in *.dll) RUN=(dotnet "$LSKD") ;; *) RUN=("$LSKD") ;; esac
export DOTNET_CLI_TELEMETRY_OPTOUT=1 NO_COLOR=1 COLUMNS=160
TEACHER=teacher-resnet20-a0.1-s1
COMMON="--data-dir $DATA --device $DEVICE --train-images $IMAGES --jsonl RESULTS_JSONL --out RESULTS_WORK/runs"
STEPS=(
    "teacher|300|train-teacher --model resnet20 --width 1 --alpha 0.1 --epochs $TEACHER_EPOCHS --batch 128 --lr 0.1 $COMMON"
    "student-T1|120|distill --teacher RESULTS_WORK/runs/$TEACHER.safetensors --model resnet8 --width 1 --temperature 1 --epochs $STUDENT_EPOCHS --batch 128 --lr 0.1 $COMMON"
    "student-T4|120|distill --teacher RESULTS_WORK/runs/$TEACHER.safetensors --model resnet8 --width 1 --temperature 4 --epochs $STUDENT_EPOCHS --batch 128 --lr 0.1 $COMMON"
)
total=0
for s in "${STEPS[@]}"; do total=$(( total + $(cut -d'|' -f2 <<<"$s") )); done
if [ $DRY = 1 ]; then
    echo "gpu-study on $DEVICE: ${#STEPS[@]} steps, limits summing to $total s (each killed 5 s after its limit)"
    i=0
    for s in "${STEPS[@]}"; do i=$((i + 1)); IFS='|' read -r name limit args <<<"$s"; printf '%2d. %-12s %4s s  lskd %s\n' $i "$name" "$limit" "$args"; done
    exit 0
fi

mkdir -p "$RESULTS" || exit 2
RESULTS=$(cd "$RESULTS" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lskd-gpu-study.XXXXXX")
JSONL="$RESULTS/study.jsonl"
: > "$JSONL"
# Run records and logs only: checkpoints stay behind (the archive is what comes back).
pack() { tar -czf "$RESULTS/.study.tgz.part" -C "$WORK" --exclude='*.safetensors' . 2>/dev/null && mv -f "$RESULTS/.study.tgz.part" "$RESULTS/study.tgz"; }
child=
trap '[ -n "$child" ] && kill -TERM $child 2>/dev/null; echo "=== interrupted" >> "$RESULTS/study.txt"; pack; exit 143' TERM INT
echo "gpu-study on $DEVICE, $(date -u '+%Y-%m-%d %H:%M UTC'), limits summing to $total s" > "$RESULTS/study.txt"
status=0
for s in "${STEPS[@]}"; do
    IFS='|' read -r name limit args <<<"$s"
    args=${args//RESULTS_JSONL/$JSONL}; args=${args//RESULTS_WORK/$WORK}
    read -r -a argv <<<"$args"
    t0=$SECONDS
    echo "=== $name (limit $limit s): lskd $args" | tee -a "$RESULTS/study.txt"
    timeout -k 5 "$limit" "${RUN[@]}" "${argv[@]}" > "$WORK/$name.txt" 2>&1 &
    child=$!
    wait $child
    rc=$?
    tail -n 20 "$WORK/$name.txt"
    case $rc in 124|137) verdict="killed at its $limit s limit" ;; 0) verdict="ok" ;; *) verdict="exit $rc" ;; esac
    echo "=== $name: $verdict after $((SECONDS - t0)) s" | tee -a "$RESULTS/study.txt"
    [ $rc -ne 0 ] && status=1
    pack
done
pack
rm -rf "$WORK"
exit $status
