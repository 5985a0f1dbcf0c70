#!/usr/bin/env bash
# Installs the Debian packages LsKd uses: the data (Fashion-MNIST, FreeDict En->De), fonts for figures, and the
# CPU peer for benchmarks (PyTorch with OpenBLAS). Quiet and quick when everything is there already: it asks
# dpkg first and runs apt-get only for what is missing. Needs root, or sudo for the install step.
set -euo pipefail
packages=(dataset-fashion-mnist dict-freedict-eng-deu fonts-dejavu-core python3-torch libopenblas0-pthread)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then missing+=("$p"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "install-deps: apt-get not found (Debian or Ubuntu needed) to install: ${missing[*]}" >&2
    echo "install-deps: elsewhere, put the Fashion-MNIST IDX files in a folder and pass --data-dir to lskd" >&2
    exit 2
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo (missing: ${missing[*]})" >&2; exit 2; }
    as_root=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q >/dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
