#!/usr/bin/env bash
# Soak: the daemon captures lab traffic live for a long time; every sample prints
# its RSS, kernel drops, windows, forecasts and the p50/p99 of how late windows
# reach inference (from its Prometheus histogram), then a verdict on RSS growth.
#
#   sudo benches/soak.sh [--minutes 60] [--every 60] [--profile cellular] [--model model_files]
#
# Traffic: `nf-lab send` (cubic, 2 flows) through the traffic lab (router
# namespace, delay line, tbf re-rated by the profile's schedule, seed 900 — not in
# any corpus), the daemon on the sender's veth writing its CSV.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
minutes=60 every=60 profile=cellular model=$here/model_files
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "soak: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "soak: needs root for network namespaces" >&2; exit 1; }
source scripts/lab/lib.sh
td=$(mktemp -d)
trap 'lab_down' EXIT INT TERM
secs=$((minutes * 60))
target/release/nf-lab schedule --profile "$profile" --seed 900 --duration-s $((secs + 30)) > "$td/plan.csv"
lab_up "$td/plan.csv" "$td/applied.csv" "$td/dl.log"
lab_bg ip netns exec "$LAB_D" target/release/nf-lab sink --listen 198.18.0.6:5201 --duration-s $((secs + 60))
ip netns exec "$LAB_S" target/release/netforecast --iface s0 --model "$model" --csv "$td/p.csv" \
  --metrics-addr 127.0.0.1:9898 -q 2> "$td/daemon.log" &
daemon=$!
LAB_PIDS+=($daemon)
sleep 2
lab_bg ip netns exec "$LAB_S" target/release/nf-lab send --to 198.18.0.6:5201 --flows 2 --cc cubic \
  --duration-s "$secs" --profile "$profile" --seed 900
pyq='
import re, sys, urllib.request
t = urllib.request.urlopen("http://127.0.0.1:9898/metrics", timeout=5).read().decode()
def v(n):
    m = re.search(r"^" + n + r" ([0-9.e+]+)$", t, re.M)
    return float(m.group(1)) if m else 0.0
b = [(float(le), float(c)) for le, c in re.findall(r"netforecast_window_delay_seconds_bucket\{le=\"([0-9.e+]+)\"\} ([0-9.e+]+)", t)]
n = v("netforecast_window_delay_seconds_count")
def q(p):
    return next((le for le, c in b if c >= p * n), float("inf")) * 1000 if n else 0
print(int(v("netforecast_kernel_drops")), int(v("netforecast_windows_total")), int(v("netforecast_forecasts_total")), int(v("netforecast_packets_counted_total")), f"{q(0.5):g}", f"{q(0.99):g}")
'
echo "minute  rss_kib  kernel_drops  windows  forecasts  packets  delay_p50_ms<=  delay_p99_ms<="
first="" last=""
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
  sleep "$every"
  kill -0 "$daemon" 2>/dev/null || { echo "soak: the daemon exited: $(tail -2 "$td/daemon.log")"; exit 1; }
  rss=$(awk '/VmRSS/ {print $2}' /proc/$daemon/status)
  read -r drops wins fcs pkts p50 p99 < <(ip netns exec "$LAB_S" python3 -c "$pyq")
  [ -z "$first" ] && first=$rss
  last=$rss
  printf "%6.1f %8d %13d %8d %10d %8d %14s %14s\n" "$(echo "($(date +%s) - $start) / 60" | bc -l)" "$rss" "$drops" "$wins" "$fcs" "$pkts" "$p50" "$p99"
done
kill -TERM "$daemon"; wait "$daemon" || true
tail -1 "$td/daemon.log"
echo "soak: RSS at the first sample $first KiB, at the end $last KiB ($((last - first)) KiB)"
