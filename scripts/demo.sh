#!/usr/bin/env bash
# The embedded default: set up, build, and run netforecast on the committed
# capture (a real TCP transfer through a bottleneck stepping 20 -> 5 -> 30 Mbit/s).
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
target/release/netforecast extract tests/data/netns-bulk-steps.pcap --out "$out"
echo
echo "features written to $out ($(($(wc -l < "$out") - 1)) windows of 50 ms); throughput every 250 ms:"
awk -F, 'NR > 1 && (NR - 2) % 5 == 0 {
  bar = ""; for (i = 0; i < $7 / 1.5; i++) bar = bar "#";
  printf "  %s  %7.2f Mbit/s  rtt %6.2f ms  bif %6d B  %s\n", substr($1, 7, 7), $7, $3 * 1000, $4, bar }' "$out"
