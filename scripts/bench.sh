#!/usr/bin/env bash
# Throughput of `netforecast extract` next to tshark and tcpdump on the same
# capture, in one run, from the page cache: packets/s, ratios and peak RSS.
#
#   scripts/bench.sh [CAPTURE]
#   NF_BASELINE=OTHER/netforecast scripts/bench.sh [CAPTURE]   # also time another build, same run
#
# Without CAPTURE it records one (as root): a bulk transfer between two network
# namespaces, unshaped, snap length 128, at least 300k packets, into target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
cargo build --release --workspace -q
nf=target/release/netforecast
cap=${1:-}
if [ -z "$cap" ]; then
  mkdir -p target/bench
  cap=target/bench/bulk.pcap
  if [ ! -s "$cap" ]; then
    scripts/lab/netns-transfer.sh --out "$cap" --seconds 4 --parallel 2 --snaplen 128
  fi
fi
pkts=$(capinfos -c -M "$cap" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
cat "$cap" > /dev/null   # page cache
echo "capture: $cap, $pkts packets, $(du -h "$cap" | cut -f1)"
[ "$pkts" -ge 300000 ] || echo "warning: fewer than 300k packets; pass a bigger capture for a stable number" >&2

# run NAME REPEATS CMD...: best wall time (bash's microsecond clock) and peak RSS
run() {
  local name=$1 reps=$2; shift 2
  local best="" rss=0 tf=target/bench/.time
  for _ in $(seq "$reps"); do
    local t0=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$tf" "$@" > /dev/null 2>&1
    local t1=$EPOCHREALTIME
    local t m
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b - a}')
    m=$(tail -1 "$tf")
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    [ "$m" -gt "$rss" ] && rss=$m
  done
  awk -v n="$name" -v t="$best" -v p="$pkts" -v r="$rss" 'BEGIN{ printf "%-34s %9.3f s %12.0f packets/s %8.1f MB peak RSS\n", n, t, p/t, r/1024 }'
  echo "$best" > "target/bench/.t_$(echo "$name" | cut -d' ' -f1-2 | tr -c 'a-z0-9\n' '_')"
}
mkdir -p target/bench
echo
run "netforecast extract" 5 $nf extract "$cap" --out /dev/null -q
if [ -n "${NF_BASELINE:-}" ]; then
  run "baseline extract ($NF_BASELINE)" 5 "$NF_BASELINE" extract "$cap" --out /dev/null -q
fi
if [ -s model_files/netforecast.pt ]; then
  run "netforecast replay (with model)" 3 $nf replay "$cap" --model model_files -q
fi
run "tcpdump -r F -w /dev/null" 5 tcpdump -r "$cap" -w /dev/null
run "tshark -T fields (oracle fields)" 1 tshark -n -r "$cap" -T fields -e frame.time_epoch -e frame.len \
  -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e tcp.srcport -e tcp.dstport \
  -e tcp.analysis.ack_rtt -e tcp.analysis.bytes_in_flight
t_nf=$(cat target/bench/.t_netforecast_extract) t_td=$(cat target/bench/.t_tcpdump__r) t_ts=$(cat target/bench/.t_tshark___)
awk -v a="$t_nf" -v b="$t_td" -v c="$t_ts" 'BEGIN{
  printf "\nnetforecast vs tshark: %.0fx faster (target >= 100x)\nnetforecast vs tcpdump raw read: %.2fx (target >= 0.5x)\n", c/a, b/a }'
if [ -n "${NF_BASELINE:-}" ]; then
  awk -v a="$t_nf" -v b="$(cat target/bench/.t_baseline_extract)" 'BEGIN{ printf "netforecast vs baseline extract: %.2fx (above 1: this build is faster)\n", b/a }'
fi
