#!/usr/bin/env bash
# The embedded default: set up, build, and run netforecast on the committed lab
# capture (one TCP flow through a cellular-like bottleneck, 1-68 Mbit/s, 20 s).
# Today that is `extract`: the nine window features, their summary, and a short
# throughput trace. Forecasting, metrics against baselines and the plot arrive
# with the model (issue 4) and will run from this same command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q
mkdir -p target/demo
out=target/demo/features.csv
target/release/netforecast extract tests/data/lab-cellular-s3.pcap.gz --out "$out"
echo
echo "features written to $out ($(($(wc -l < "$out") - 1)) windows of 50 ms); throughput every 500 ms:"
awk -F, 'NR > 1 && (NR - 2) % 10 == 0 {
  bar = ""; for (i = 0; i < $7 / 1.5; i++) bar = bar "#";
  printf "  %s  %7.2f Mbit/s  rtt %6.2f ms  bif %6d B  %s\n", substr($1, 7, 7), $7, $3 * 1000, $4, bar }' "$out"
