#!/usr/bin/env bash
# Python's torch.jit.load runs the shipped model and agrees with netforecast's own
# forecasts (scripts/check-python-load.py says how).
#
#   scripts/check-python-load.sh [--model model_files] [--capture C]
#
# First use makes .venv-torch (git-ignored, ~4.7 GB): PyPI's torch 2.13.0 wheel
# (the one scripts/setup-libtorch.sh fetched and checked against its pinned hash,
# when it is in the wheel cache) and the CUDA runtime wheels torch needs to import.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-torch
cache=${NETFORECAST_WHEEL_CACHE:-$HOME/.cache/netforecast-wheels}
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  echo "check-python-load: installing torch 2.13.0 into $venv (~4.7 GB with its CUDA wheels)" >&2
  wheel=$(ls "$cache"/torch-2.13.0-cp311-*.whl 2>/dev/null | head -1 || true)
  if [ -n "$wheel" ] && "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    "$venv/bin/pip" install -q --no-deps "$wheel"
  fi
  "$venv/bin/pip" install -q torch==2.13.0 numpy
fi
[ -x target/release/netforecast ] && [ -x target/release/netforecast-ml ] || cargo build --release --workspace -q
"$venv/bin/python" scripts/check-python-load.py "$@"
