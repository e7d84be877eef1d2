#!/usr/bin/env bash
# Installs what netforecast needs to build, test and run on Debian 12 (as root).
# Idempotent: a second run only checks.
set -euo pipefail
need_apt=()
for pkg in libpcap-dev tshark tcpdump iperf3 iproute2 ethtool python3 python3-pip pkg-config gcc g++ \
  libfontconfig1-dev libfreetype6-dev fonts-dejavu-core time \
  influxdb victoria-metrics prometheus python3-yaml; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Node.js and npm for the dashboard type check; a machine may already have them
# from elsewhere (then Debian's npm package would conflict).
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain with rustup" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates >/dev/null
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
# CPU libtorch for tch, from pinned PyPI wheels (scripts/setup-libtorch.sh).
"$(dirname "$0")/setup-libtorch.sh"
echo "setup: ok ($(cargo --version), $(tshark --version 2>/dev/null | head -1))" >&2
