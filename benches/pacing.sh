#!/usr/bin/env bash
# Does TCP pacing work without fq? One lab path (100 Mbit/s, 10 ms), `nf-lab serve`
# in the sender, and two 6 s requests at 2 Mbit/s from the receiver: one with
# kernel pacing (SO_MAX_PACING_RATE), one with the rate-limited writer. Prints
# each transfer's rate and the 50 ms windows' median and p10-p90 (from a
# capture at the sender, through `netforecast extract`). Needs root.
#
#   sudo benches/pacing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "pacing: needs root for network namespaces" >&2; exit 1; }
cargo build --release --workspace -q
source scripts/lab/lib.sh
td=$(mktemp -d)
trap 'lab_down; rm -rf "$td"' EXIT INT TERM
printf 'time_s,rate_mbps,delay_ms,jitter_ms,loss\n0,100,10,0,0\n' > "$td/plan.csv"
lab_up "$td/plan.csv" "$td/applied.csv" "$td/dl.log" 100 1
lab_bg ip netns exec "$LAB_S" target/release/nf-lab serve --listen 198.18.0.1:5301 --duration-s 40
for pace in 1 2; do
  ip netns exec "$LAB_S" tcpdump -i s0 -s 128 -w "$td/p$pace.pcap" -U tcp 2>/dev/null & dump=$!
  LAB_PIDS+=($dump)
  sleep 0.5
  ip netns exec "$LAB_D" python3 - "$pace" <<'PY'
import socket, struct, sys, time
pace = int(sys.argv[1])
s = socket.create_connection(("198.18.0.1", 5301))
size = 2_000_000 // 8 * 6   # 6 s at 2 Mbit/s
s.sendall(struct.pack("<QII", size, 2000, pace))
got, t0 = 0, time.time()
while got < size:
    b = s.recv(1 << 16)
    if not b:
        break
    got += len(b)
dt = time.time() - t0
print(f"{'kernel pacing' if pace == 1 else 'rate-limited writer'}: {got} bytes in {dt:.2f} s = {got * 8 / dt / 1e6:.2f} Mbit/s")
PY
  sleep 0.5
  kill -INT "$dump"; wait "$dump" 2>/dev/null || true
  target/release/netforecast extract "$td/p$pace.pcap" --out "$td/p$pace.csv" -q
  python3 - "$td/p$pace.csv" <<'PY'
import csv, sys
v = sorted(float(r["throughput_mbps"]) for r in csv.DictReader(open(sys.argv[1])) if r["is_silent"] == "0")
print(f"  {len(v)} busy windows: median {v[len(v) // 2]:.2f}, p10 {v[len(v) // 10]:.2f}, p90 {v[len(v) * 9 // 10]:.2f} Mbit/s")
PY
done
