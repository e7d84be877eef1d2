#!/usr/bin/env bash
# The delay line's own test: UDP probes every 2 ms through the lab router while the
# schedule plays two phases, 40 ms delay with 10 % loss, then 80 ms delay with
# 5 ms jitter. Checks the measured one-way delay and loss against the schedule
# (tolerances in tests/system/lab_delayline_check.py). Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "lab_delayline: needs root; skipped"; echo "delayline: 0 passed, 0 failed, 1 skipped"; exit 0; }
source scripts/lab/lib.sh
td=$(mktemp -d)
trap 'lab_down; rm -rf "$td"' EXIT INT TERM
printf 'time_s,rate_mbps,delay_ms,jitter_ms,loss\n0,50,40,0,0.1\n6,50,80,5,0\n' > "$td/sched.csv"
lab_up "$td/sched.csv" "$td/applied.csv" "$td/dl.log"
lab_bg ip netns exec "$LAB_D" python3 tests/system/lab_probe.py recv 9000 14 "$td/probes.csv"
sleep 0.3
ip netns exec "$LAB_S" python3 tests/system/lab_probe.py send 198.18.0.6 9000 12 2 > "$td/sent"
sleep 1.5
lab_down
python3 tests/system/lab_delayline_check.py "$td/applied.csv" "$td/probes.csv" "$(cat "$td/sent")" "$(cat "$td/dl.log")"
