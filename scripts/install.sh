#!/usr/bin/env bash
# Installs netforecast under one prefix: both binaries, the libtorch libraries
# they need and the shipped model, so the install does not depend on this
# checkout (and a copy of the prefix works elsewhere).
#
#   sudo scripts/install.sh [--prefix /opt/netforecast]
#
#   PREFIX/bin/netforecast, PREFIX/bin/netforecast-ml
#   PREFIX/lib/libtorch_cpu.so, libc10.so, libgomp.so.1, libcudart.so.13, libcupti.so.13
#   PREFIX/share/netforecast/model_files/
#
# netforecast-ml's library path is set to $ORIGIN/../lib (a copy of the prefix
# works) and PREFIX/lib (binaries given capabilities with setcap ignore $ORIGIN).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/opt/netforecast
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    *) echo "install: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
command -v patchelf >/dev/null || {
  echo "install: installing patchelf" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null
}
[ -f libtorch/lib/libtorch_cpu.so ] || scripts/setup-libtorch.sh
if [ ! -x target/release/netforecast-ml ] || [ ! -x target/release/netforecast ]; then
  cargo build --release --workspace -q
fi
install -d "$prefix/bin" "$prefix/lib" "$prefix/share/netforecast"
install -m 0755 target/release/netforecast target/release/netforecast-ml "$prefix/bin/"
for so in libtorch_cpu.so libc10.so libgomp.so.1 libcudart.so.13 libcupti.so.13; do
  install -m 0644 "libtorch/lib/$so" "$prefix/lib/$so"
done
patchelf --set-rpath "\$ORIGIN/../lib:$prefix/lib" "$prefix/bin/netforecast-ml"
rm -rf "$prefix/share/netforecast/model_files"
cp -r model_files "$prefix/share/netforecast/model_files"
echo "install: $prefix ($(du -sh "$prefix" | cut -f1)); run $prefix/bin/netforecast" >&2
