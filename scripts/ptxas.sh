#!/usr/bin/env bash
# Fetches ptxas (CUDA 11.8's NVIDIA PTX assembler) from Debian bookworm's non-free nvidia-cuda-toolkit into
# .tools/ptxas without installing the toolkit (84 MB download, one 19 MB file kept), so that `lskd ptx` can report
# every kernel's registers, stack frame and spills on a machine without a GPU:
#   scripts/ptxas.sh && lskd ptx --isa 7.8 --ptxas .tools/ptxas --out .tools/ptx
# CUDA 11.8 reads PTX ISA 7.8 at most (ILGPU writes 8.0 for the driver); the code is the same apart from the header.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .tools/ptxas ] && { .tools/ptxas --version | tail -1; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"; rm -f /etc/apt/sources.list.d/lskd-non-free.sources' EXIT
cat > /etc/apt/sources.list.d/lskd-non-free.sources <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt-get update -qq
(cd "$work" && apt-get download -qq nvidia-cuda-toolkit)
dpkg-deb -x "$work"/nvidia-cuda-toolkit_*.deb "$work/x"
mkdir -p .tools
cp "$work/x/usr/bin/ptxas" .tools/ptxas
apt-get update -qq   # forget the non-free lists again
.tools/ptxas --version | tail -1
