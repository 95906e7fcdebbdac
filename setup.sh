#!/usr/bin/env bash
# Set up grokking-sweeps in ./.venv: the CPU build of torch first, then the project.
# On a machine with an NVIDIA GPU, set TORCH_SPEC to the pip arguments of the CUDA build of torch
# that matches your driver (PyTorch's install page gives them), e.g. TORCH_SPEC="torch==2.13.0
# --index-url <the PyTorch wheel index for your CUDA version>" bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch goes in first, pinned: an unpinned torch (asked for by transformer-lens) would pull a
# CUDA build of several GB. 2.13.0 is the CPU build that this project's machines hold on disk.
.venv/bin/python -m pip install -q ${TORCH_SPEC:-torch==2.13.0}
.venv/bin/python -m pip install -q -e ".[test]"
echo "set-up done: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"
