#!/usr/bin/env bash
# Prepares what travels to a lent GPU machine (at most 64 MiB, no .NET there): lskd published self-contained as one
# trimmed, compressed file (only the framework is trimmed; about 18 MB) plus SkiaSharp's native libraries for the
# figures (11.5 MB), in .gpu/bin, and Fashion-MNIST Brotli-packed by `lskd pack-data` (about 27 MB) in .gpu/data.
# Then, on the lent machine, from the repository root (one call each, carry .gpu):
#   scripts/gpu-check.sh --out "$OUT"      # every kernel checked, benchmarks beside PyTorch CUDA (450 s of limits)
#   scripts/gpu-study.sh --out "$OUT"      # the paper preset's teacher and students on the full data (540 s)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/usr/share/datasets/fashion-mnist}
rm -rf .gpu/bin
dotnet publish src/Experiments -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true \
    -p:EnableCompressionInSingleFile=true -p:PublishTrimmed=true -p:TrimMode=partial \
    -p:JsonSerializerIsReflectionEnabledByDefault=true -p:SuppressTrimAnalysisWarnings=true -o .gpu/bin
rm -f .gpu/bin/*.pdb
[ -f .gpu/data/train-images-idx3-ubyte.br ] || .gpu/bin/lskd pack-data --data-dir "$DATA" --out .gpu/data
total=$(du -cb .gpu/bin .gpu/data | tail -1 | cut -f1)
echo "bundle: $total bytes ($(( total * 100 / 67108864 )) % of 64 MiB)"
[ "$total" -le 67108864 ] || { echo "bundle exceeds 64 MiB" >&2; exit 1; }
