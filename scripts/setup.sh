#!/usr/bin/env bash
# scripts/setup.sh -- everything tessera needs on a fresh Debian 12 machine.
#
# Idempotent: installs only the Debian packages that are missing (as root), makes
# the virtual environment once (from /usr/bin/python3, with system site packages,
# because torch comes from Debian), and registers a Jupyter kernel "tessera"
# that sees the venv. Without root and with packages missing it stops with one
# clear message naming them. No PyPI is used or needed.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang-14 + libclang-rt-14-dev: make fuzz (libFuzzer and the sanitizer runtimes of clang are in
# libclang-rt-14-dev: lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a; clang only
# recommends it). g++'s ASan/UBSan/TSan runtimes (make test-asan, test-tsan) come with g++.
PACKAGES=(
  build-essential cmake ninja-build ccache git
  libtorch-dev python3-torch python3-torchvision
  pybind11-dev python3-pybind11 python3-dev
  libzmq3-dev cppzmq-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libboost-graph-dev libxgboost-dev
  libopenblas0-pthread
  python3-venv python3-pip python3-setuptools python3-wheel python3-pytest python3-numpy python3-zmq
  python3-networkx python3-matplotlib python3-tqdm python3-xgboost python3-sklearn libzstd-dev
  python3-nbclient python3-nbformat python3-ipykernel iproute2
  python3-sphinx python3-myst-parser doxygen python3-breathe
  clang-14 libclang-rt-14-dev
)

# TESSERA_EXTRA_PACKAGES: more packages to require (tests use it to check the message).
read -r -a extra <<< "${TESSERA_EXTRA_PACKAGES:-}"
PACKAGES+=("${extra[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "tessera set-up: these Debian packages are missing: ${missing[*]}" >&2
    echo "Install them as root, then run make again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 3
  fi
  echo "tessera set-up: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# OpenBLAS for libtorch's BLAS calls (Linear/matmul ~40x faster than the reference BLAS).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ "$blas" != *openblas* ]]; then
  echo "tessera set-up: warning: libblas.so.3 is $blas, not OpenBLAS; Linear layers will be slow" >&2
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "tessera set-up: creating .venv (system site packages, /usr/bin/python3)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

if [[ ! -f .venv/share/jupyter/kernels/tessera/kernel.json ]]; then
  .venv/bin/python -Xfrozen_modules=off -m ipykernel install --sys-prefix --name tessera --display-name "tessera (venv)" >/dev/null
fi
