#!/usr/bin/env bash
# Installs what netforecast needs to build and run on Debian 12 (as root);
# `--test` adds what the tests need, including the servers they start
# themselves (InfluxDB 1.x, VictoriaMetrics, Prometheus), which are installed
# without being started or enabled; `--ns3` adds ns-3 (libns3-dev, libgsl-dev)
# for the wireless corpus (scripts/ns3/make-corpus.sh). Idempotent: a second
# run only checks.
set -euo pipefail
pkgs=(libpcap-dev iproute2 python3 python3-pip pkg-config gcc g++ libfontconfig1-dev libfreetype6-dev fonts-dejavu-core)
servers=()
if [ "${1:-}" = --ns3 ]; then
  pkgs+=(libns3-dev libgsl-dev)
fi
if [ "${1:-}" = --test ]; then
  # chromium: the page test opens the daemon's page in it (headless).
  pkgs+=(tshark tcpdump iperf3 ethtool time python3-yaml patchelf chromium)
  servers=(influxdb victoria-metrics prometheus prometheus-alertmanager)
fi
need_apt=()
for pkg in "${pkgs[@]}" "${servers[@]}"; do
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
  # Servers must not start on install (on a systemd host Debian would start them,
  # and InfluxDB would listen on every interface without authentication): a
  # policy-rc.d that says no, for the length of this install only.
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  [ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for svc in influxdb victoria-metrics prometheus prometheus-node-exporter prometheus-alertmanager; do
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
  fi
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
# The tests start with cargo fmt and clippy; a minimal toolchain lacks them.
if [ "${1:-}" = --test ] && command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c" >/dev/null 2>&1 || true
  done
fi
# CPU libtorch for tch, from pinned PyPI wheels (scripts/setup-libtorch.sh).
"$(dirname "$0")/setup-libtorch.sh"
echo "setup: ok ($(cargo --version), $(tshark --version 2>/dev/null | head -1))" >&2
