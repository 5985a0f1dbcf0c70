#!/usr/bin/env bash
# Installs the Debian packages LsKd uses: the data (Fashion-MNIST, FreeDict En->De), fonts for figures, and the
# CPU peer for benchmarks (PyTorch with OpenBLAS). Run as root (or with sudo).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    dataset-fashion-mnist dict-freedict-eng-deu fonts-dejavu-core \
    python3-torch libopenblas0-pthread
