#!/usr/bin/env bash
# netforecast next to tcpdump and tshark on five kinds of capture, in one run,
# from the page cache: seconds, packets/s, ratios of the same run, peak RSS;
# replay with the shipped model on the dense ones; inference percentiles.
#
#   sudo scripts/bench.sh                 # all five (records what is missing)
#   scripts/bench.sh CAPTURE...           # only these files
#   NF_BASELINE=OTHER/netforecast scripts/bench.sh ...   # also time another build's extract
#   NF_BENCH_SKIP_INFERENCE=1 ...         # without the criterion run
#
# The captures, in target/bench/ (recorded or generated when missing):
#   bulk.pcap       clean bulk: two cubic flows between namespaces, unshaped, snap 128
#   loss.pcap       several flows with loss recovery: four bbr flows through the lab's
#                   delay line (200 Mbit/s, 25 ms, 1 % loss), snap 96 (needs root)
#   churn.pcap      1 M flows of a SYN and one segment each (testkit churn)
#   sparse.pcap     12 hours of a quiet link: 864 k windows, 139 k packets (testkit sparse)
#   loss.pcap.gz    the loss capture gzipped
#
# Each row: best of 9 (NF_BENCH_RUNS) for netforecast and tcpdump (runs alternate:
# this VM's host steals time in episodes of seconds), 1 for tshark;
# ratios are the other tool's time over netforecast's (above 1: netforecast is
# faster). The machine is noisy: compare ratios of one run, not seconds across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
for t in tcpdump tshark capinfos; do
  command -v $t >/dev/null || { echo "bench: $t missing; run scripts/setup.sh" >&2; exit 1; }
done
cargo build --release --workspace -q
nf=target/release/netforecast
b=target/bench
mkdir -p $b

caps=("$@")
if [ ${#caps[@]} -eq 0 ]; then
  root=$([ "$(id -u)" = 0 ] && echo yes || echo no)
  if [ ! -s $b/bulk.pcap ] && [ $root = yes ]; then
    scripts/lab/netns-transfer.sh --out $b/bulk.pcap --seconds 4 --parallel 2 --snaplen 128 >&2
  fi
  if [ ! -s $b/loss.pcap ] && [ $root = yes ]; then
    printf 'time_s,rate_mbps,delay_ms,jitter_ms,loss\n0,200,25,0,0.01\n' > $b/loss.sched.csv
    scripts/lab/run.sh --profile steps --schedule $b/loss.sched.csv --seed 2 --seconds 20 \
      --flows 4 --cc bbr --snaplen 96 --out $b --name loss >&2
  fi
  [ -s $b/churn.pcap ] || target/release/churn $b/churn.pcap 1000000
  [ -s $b/sparse.pcap ] || target/release/sparse $b/sparse.pcap 12
  if [ -s $b/loss.pcap ] && [ ! -s $b/loss.pcap.gz ]; then gzip -6 -k -c $b/loss.pcap > $b/loss.pcap.gz; fi
  for f in bulk.pcap loss.pcap churn.pcap sparse.pcap loss.pcap.gz; do
    if [ -s $b/$f ]; then caps+=("$b/$f"); else echo "bench: $b/$f missing (recording it needs root)" >&2; fi
  done
fi

# once CMD...: wall seconds (bash's microsecond clock) and peak RSS in MB
once() {
  local t0=$EPOCHREALTIME
  /usr/bin/time -f "%M" -o $b/.time "$@" > /dev/null 2>&1 || { echo "bench: failed: $*" >&2; return 1; }
  local t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" -v m="$(tail -1 $b/.time)" 'BEGIN{printf "%.6f %.1f\n", b - a, m / 1024}'
}
# best N CMD...: best wall time of N runs, the largest RSS
best() {
  local n=$1; shift
  local t="" m=0 r
  for _ in $(seq "$n"); do
    r=$(once "$@")
    if [ -z "$t" ] || awk "BEGIN{exit !(${r% *} < $t)}"; then t=${r% *}; fi
    m=$(awk -v a="$m" -v b="${r#* }" 'BEGIN{print (b > a ? b : a)}')
  done
  echo "$t $m"
}

row() { # NAME PACKETS SECONDS RSS [EXTRA]
  awk -v n="$1" -v p="$2" -v t="$3" -v m="$4" -v x="${5:-}" \
    'BEGIN{ printf "  %-30s %9.3f s %10.2f M pkt/s %8.1f MB  %s\n", n, t, p / t / 1e6, m, x }'
}

tshark_fields=(-T fields -e frame.time_epoch -e frame.len -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst
  -e tcp.srcport -e tcp.dstport -e tcp.analysis.ack_rtt -e tcp.analysis.bytes_in_flight)
summary=()
for cap in "${caps[@]}"; do
  name=$(basename "$cap")
  pkts=$(capinfos -c -M "$cap" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
  cat "$cap" > /dev/null
  windows=$($nf extract "$cap" --out - -q | tail -n +2 | wc -l)
  echo
  echo "$name: $pkts packets, $windows windows, $(du -h "$cap" | cut -f1)"
  # Alternate netforecast and tcpdump so both see the same machine state.
  tn="" mn=0 tt="" mt=0
  for _ in $(seq "${NF_BENCH_RUNS:-9}"); do
    r=$(once $nf extract "$cap" --out /dev/null -q)
    if [ -z "$tn" ] || awk "BEGIN{exit !(${r% *} < $tn)}"; then tn=${r% *}; fi
    mn=$(awk -v a="$mn" -v b="${r#* }" 'BEGIN{print (b > a ? b : a)}')
    case "$cap" in
      # tcpdump reads no gzip: its raw read of a gzipped file is gzip -dc into it.
      *.gz) r=$(once sh -c 'gzip -dc "$1" | tcpdump -r - -w /dev/null' sh "$cap") ;;
      *) r=$(once tcpdump -r "$cap" -w /dev/null) ;;
    esac
    if [ -z "$tt" ] || awk "BEGIN{exit !(${r% *} < $tt)}"; then tt=${r% *}; fi
    mt=$(awk -v a="$mt" -v b="${r#* }" 'BEGIN{print (b > a ? b : a)}')
  done
  r=$(once tshark -n -r "$cap" "${tshark_fields[@]}")
  ts=${r% *} ms=${r#* }
  vs_td=$(awk -v a="$tn" -v b="$tt" 'BEGIN{printf "%.2f", b / a}')
  vs_ts=$(awk -v a="$tn" -v b="$ts" 'BEGIN{printf "%.0f", b / a}')
  row "netforecast extract" "$pkts" "$tn" "$mn" "${vs_td}x tcpdump, ${vs_ts}x tshark"
  if [ -n "${NF_BASELINE:-}" ]; then
    r=$(best 5 "$NF_BASELINE" extract "$cap" --out /dev/null -q)
    row "baseline extract" "$pkts" "${r% *}" "${r#* }" \
      "$(awk -v a="$tn" -v b="${r% *}" 'BEGIN{printf "this build %.2fx the baseline", b / a}')"
  fi
  case "$cap" in
    *.gz) row "gzip -dc F | tcpdump -r -" "$pkts" "$tt" "$mt" ;;
    *) row "tcpdump -r F -w /dev/null" "$pkts" "$tt" "$mt" ;;
  esac
  row "tshark -T fields (oracle's)" "$pkts" "$ts" "$ms"
  rep=""
  if [ -s model_files/netforecast.pt ] && [ "$windows" -lt 100000 ]; then
    # Replay where the model runs for most windows (not the hours of silence).
    r=$(best 3 $nf replay "$cap" -q)
    row "replay (shipped model)" "$pkts" "${r% *}" "${r#* }"
    r32=$(best 3 $nf replay "$cap" -q --batch 32)
    row "replay --batch 32" "$pkts" "${r32% *}" "${r32#* }"
    rep=$(awk -v p="$pkts" -v a="${r% *}" -v b="${r32% *}" 'BEGIN{printf "replay %.2f / %.2f M pkt/s (batch 1 / 32)", p / a / 1e6, p / b / 1e6}')
  fi
  summary+=("$(printf '%-14s extract %sx tcpdump, %sx tshark, %.1f MB; %s' "$name" "$vs_td" "$vs_ts" "$mn" "$rep")")
done

echo
echo "summary (targets: >= 1.0x tcpdump on bulk and loss, >= 0.7x on churn, >= 100x tshark everywhere, replay >= 1 M pkt/s on the dense ones):"
printf '  %s\n' "${summary[@]}"

if [ -z "${NF_BENCH_SKIP_INFERENCE:-}" ] && [ -s model_files/netforecast.pt ]; then
  echo
  echo "inference (criterion; percentiles printed by the bench):"
  cargo bench -q -p netforecast-model --bench model -- --warm-up-time 1 --measurement-time 3 2>&1 |
    grep -E "^model |^inference/|time:|thrpt:" | sed 's/^/  /'
fi
