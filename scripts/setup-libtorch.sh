#!/usr/bin/env bash
# Assemble a CPU libtorch 2.13.0 (what tch 0.26 expects) in ./libtorch from PyPI
# wheels with pinned hashes; idempotent. No other host is contacted.
#
# PyPI's torch 2.13.0 wheel is a CUDA build, but its libtorch_cpu.so, libc10.so,
# libgomp.so.1 and headers make a CPU libtorch. libtorch_cpu links against the
# CUDA runtime and CUPTI sonames, which come from the nvidia-cuda-runtime and
# nvidia-cuda-cupti wheels (no GPU is needed to load them). The wheel's
# libtorch.so pulls in libtorch_cuda, so it is replaced by a linker script
# INPUT(-ltorch_cpu). About 480 MB, git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=libtorch
stamp=$dest/.netforecast-libtorch-2.13.0
if [ -f "$stamp" ]; then
  echo "setup-libtorch: $dest is ready" >&2
  exit 0
fi
command -v python3 >/dev/null || { echo "setup-libtorch: python3 is missing; run scripts/setup.sh" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
}
cache=${NETFORECAST_WHEEL_CACHE:-$HOME/.cache/netforecast-wheels}
mkdir -p "$cache"
req=$(mktemp)
trap 'rm -f "$req"' EXIT
cat > "$req" <<'REQ'
torch==2.13.0 --hash=sha256:60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cupti==13.0.85 --hash=sha256:4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8
REQ
echo "setup-libtorch: fetching wheels (torch 527 MB) into $cache" >&2
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -r "$req" -d "$cache"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/lib"
python3 - "$cache" "$dest.tmp" <<'PY'
import glob, os, sys, zipfile
cache, dest = sys.argv[1], sys.argv[2]
def one(pattern):
    m = glob.glob(os.path.join(cache, pattern))
    if len(m) != 1:
        sys.exit(f"setup-libtorch: expected one wheel for {pattern}, found {m}")
    return m[0]
with zipfile.ZipFile(one("torch-2.13.0-*.whl")) as z:
    for n in z.namelist():
        if n.startswith("torch/include/") and not n.endswith("/"):
            z.extract(n, dest)
        elif n in ("torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/lib/libgomp.so.1"):
            with z.open(n) as src, open(os.path.join(dest, "lib", os.path.basename(n)), "wb") as out:
                out.write(src.read())
for pat, so in (("nvidia_cuda_runtime-13.0.96-*.whl", "libcudart.so.13"), ("nvidia_cuda_cupti-13.0.85-*.whl", "libcupti.so.13")):
    with zipfile.ZipFile(one(pat)) as z:
        with z.open(f"nvidia/cu13/lib/{so}") as src, open(os.path.join(dest, "lib", so), "wb") as out:
            out.write(src.read())
PY
mv "$dest.tmp/torch/include" "$dest.tmp/include"
rmdir "$dest.tmp/torch"
echo 'INPUT(-ltorch_cpu)' > "$dest.tmp/lib/libtorch.so"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo 2.13.0 > "$dest/build-version"
touch "$stamp"
echo "setup-libtorch: $dest ready ($(du -sh "$dest" | cut -f1))" >&2
