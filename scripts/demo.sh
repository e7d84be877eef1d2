#!/usr/bin/env bash
# The embedded default: set up, build, and replay the committed lab capture (one
# TCP flow through a cellular-like bottleneck, 1-68 Mbit/s, 20 s, never used in
# training) through the shipped model: the metrics against the naive baselines,
# the predictions CSV, the report JSON and the phase-shift plot.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace -q
mkdir -p target/demo
target/release/netforecast replay tests/data/lab-cellular-s3.pcap.gz --model model_files \
  --out target/demo/predictions.csv --report target/demo/report.json --plot target/demo/phase-shift.png
echo
echo "wrote target/demo/predictions.csv, target/demo/report.json and target/demo/phase-shift.png"
