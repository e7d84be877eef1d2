#!/usr/bin/env bash
# Run the daemon live for a while and sample its memory, kernel drops and window
# latency: a bounded iperf3 transfer through a 40 Mbit/s tbf between two network
# namespaces this script makes, the daemon capturing on the sender's veth and
# writing its CSV. Prints one line per sample and a verdict on RSS growth.
#
#   sudo scripts/soak.sh [--minutes 10] [--every 10] [--model model_files]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10 every=10 model=model_files
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "soak: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "soak: needs root for network namespaces" >&2; exit 1; }
id=$$ S=nfk-s-$$ R=nfk-r-$$
td=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$S" 2>/dev/null || true; ip netns del "$R" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$S"; ip netns add "$R"
ip link add "k$id" netns "$S" type veth peer name "l$id" netns "$R"
ip -n "$S" addr add 198.18.3.1/30 dev "k$id"; ip -n "$R" addr add 198.18.3.2/30 dev "l$id"
for n in "$S k$id" "$R l$id"; do set -- $n; ip -n "$1" link set lo up; ip -n "$1" link set "$2" up; done
ip netns exec "$S" tc qdisc replace dev "k$id" root tbf rate 40mbit burst 32000 latency 40ms
ip netns exec "$R" iperf3 -s -B 198.18.3.2 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$S" target/release/netforecast --iface "k$id" --model "$model" --csv "$td/p.csv" --metrics-addr "" -q \
  2> "$td/daemon.log" & daemon=$!; pids+=($daemon)
sleep 1
ip netns exec "$S" timeout $((minutes * 60 + 5)) iperf3 -c 198.18.3.2 -t $((minutes * 60)) >/dev/null 2>&1 & pids+=($!)
echo "minute  rss_kib  csv_rows"
first="" last=""
end=$(( $(date +%s) + minutes * 60 ))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep "$every"
  rss=$(awk '/VmRSS/ {print $2}' /proc/$daemon/status)
  rows=$(($(wc -l < "$td/p.csv") - 1))
  [ -z "$first" ] && [ "$rows" -gt 1000 ] && first=$rss
  last=$rss
  awk -v m="$(( $(date +%s) - end + minutes * 60 ))" -v r="$rss" -v n="$rows" 'BEGIN{printf "%6.1f %8d %9d\n", m/60, r, n}'
done
kill -TERM "$daemon"; wait "$daemon" || true
tail -1 "$td/daemon.log"
echo "soak: RSS after warm-up ${first:-?} KiB, at the end $last KiB"
