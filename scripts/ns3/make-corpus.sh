#!/usr/bin/env bash
# Wireless traces from ns-3 (Debian's libns3-dev 3.37): TCP over Wi-Fi and LTE,
# captured at the server as pcaps, deterministic per seed.
#
#   scripts/ns3/make-corpus.sh --out corpus/ns3 [--seconds 120] [--seeds "1 2 3 4 5"]
#        [--scenarios "wifi lte"] [--apps "bulk video web onoff"] [--gzip]
#
# Builds scripts/ns3/wireless.cc into target/ns3/wireless (g++ and pkg-config;
# scripts/setup.sh --ns3 installs them), then runs every scenario x app x seed,
# niced, one at a time (a simulation uses one core and runs faster than real
# time at these rates). The highest seed is held out (split `heldout`).
# corpus/ns3/manifest.csv has the lab manifest's columns (class `wireless`).
# No root and no network: everything happens inside the simulator.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out="" seconds=120 seeds="1 2 3 4 5" scenarios="wifi lte" apps="bulk video web onoff" gzip=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --apps) apps=$2; shift 2 ;;
    --gzip) gzip=1; shift ;;
    *) echo "ns3: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "ns3: give --out DIR" >&2; exit 2; }
pkg-config --exists ns3-wifi ns3-lte 2>/dev/null || { echo "ns3: libns3-dev is missing; run scripts/setup.sh --ns3" >&2; exit 1; }
bin=$here/target/ns3/wireless
if [ ! -x "$bin" ] || [ "$here/scripts/ns3/wireless.cc" -nt "$bin" ]; then
  mkdir -p "$(dirname "$bin")"
  # Debian's ns-3 .pc files carry a broken include path; the headers are in /usr/include/ns3.
  g++ -O2 -std=c++17 -I/usr/include -I/usr/include/libxml2 "$here/scripts/ns3/wireless.cc" -o "$bin" \
    $(pkg-config --libs ns3-wifi ns3-lte ns3-applications ns3-internet ns3-mobility ns3-point-to-point)
fi
cargo build --release -q -p netforecast --manifest-path "$here/Cargo.toml"
nf=$here/target/release/netforecast
mkdir -p "$out"
manifest=$out/manifest.csv
[ -s "$manifest" ] || echo "name,class,profile,seed,cc,flows,seconds,capture_at,offloads,split,packets,wire_bytes,kernel_drops,pcap" > "$manifest"
read -ra SEEDS <<< "$seeds"
last=${SEEDS[${#SEEDS[@]} - 1]}
ccs=(cubic newreno bbr)
i=0
for seed in "${SEEDS[@]}"; do
  for sc in $scenarios; do
    for app in $apps; do
      cc=${ccs[i % 3]}; i=$((i + 1))
      name=$sc-$app-s$seed-$cc
      grep -q "^$name," "$manifest" && continue
      pcap=$out/$name.pcap
      nice -n 19 "$bin" --scenario="$sc" --app="$app" --seed="$seed" --duration="$seconds" --cc="$cc" --out="$pcap" 2> "$out/$name.log"
      "$nf" extract "$pcap" --out /dev/null -q --summary-json "$out/$name.summary.json"
      read -r packets wire < <(python3 -c "import json,sys; c=json.load(open(sys.argv[1]))[0]['counters']; print(c['frames'], c['counted_bytes'])" "$out/$name.summary.json")
      if [ "$gzip" = 1 ]; then gzip -f "$pcap"; pcap=$pcap.gz; fi
      split=train; [ "$seed" = "$last" ] && split=heldout
      echo "$name,wireless,$sc-$app,$seed,$cc,1,$seconds,sender,off,$split,$packets,$wire,0,$(basename "$pcap")" >> "$manifest"
      echo "ns3: $name: $packets packets ($(cat "$out/$name.log"))" >&2
    done
  done
done
echo "ns3: $(( $(wc -l < "$manifest") - 1 )) traces in $manifest" >&2
