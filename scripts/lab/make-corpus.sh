#!/usr/bin/env bash
# Build a training corpus of lab traces within a time budget, with a manifest.
#
#   sudo scripts/lab/make-corpus.sh --out corpus --traces 48 --seconds 60 [--budget-min 60]
#        [--seed-base 100] [--profiles "steps ramps random-walk outages cellular loss-bursts delay-steps on-off"]
#        [--ccs "cubic bbr reno"] [--gzip]
#   sudo scripts/lab/make-corpus.sh --out corpus --plan plan.csv [--jobs 2] [--budget-min 90] [--gzip]
#
# With --plan (scripts/lab/corpus-plan.py writes the standard one) every row
# name,class,profile,seed,cc,flows,seconds,capture_at,offloads,split is one
# trace, run --jobs at a time (each trace has its own namespaces); backlogged
# traces need both cores, so they run one at a time beside the application
# traces. The manifest then also has class,capture_at,offloads,split.
#
# Trace i plays profile i mod P with congestion control (i div P) mod C, seed
# seed-base + i, and 1 flow (every fourth trace: 2 flows, every eighth: 3). Traces
# run one after another (a trace needs both cores: sender, delay line, capture).
# Each takes its duration plus ~3 s of setup, so the run refuses a plan that
# cannot fit the budget and stops starting traces when the budget is spent.
# corpus/manifest.csv: name,profile,seed,cc,flows,seconds,packets,wire_bytes,kernel_drops,pcap.
# Large corpora stay out of git (corpus/ is ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out="" traces=24 seconds=60 budget_min=60 seed_base=100 gzip=0 plan="" jobs=1
profiles="steps ramps random-walk outages cellular loss-bursts delay-steps on-off"
ccs="cubic bbr reno"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --traces) traces=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --budget-min) budget_min=$2; shift 2 ;;
    --seed-base) seed_base=$2; shift 2 ;;
    --profiles) profiles=$2; shift 2 ;;
    --ccs) ccs=$2; shift 2 ;;
    --gzip) gzip=1; shift ;;
    --plan) plan=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "make-corpus: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "make-corpus: give --out DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "make-corpus: needs root for network namespaces; run with sudo" >&2; exit 1; }
if [ -n "$plan" ]; then
  [ -s "$plan" ] || { echo "make-corpus: plan $plan is missing or empty; make one with scripts/lab/corpus-plan.py" >&2; exit 2; }
  cargo build --release --workspace -q --manifest-path "$here/Cargo.toml"
  nf=$here/target/release/netforecast
  mkdir -p "$out"
  manifest=$out/manifest.csv
  [ -s "$manifest" ] || echo "name,class,profile,seed,cc,flows,seconds,capture_at,offloads,split,packets,wire_bytes,kernel_drops,pcap" > "$manifest"
  start=$(date +%s)
  one() { # one plan row -> one trace and its manifest line
    local name=$1 class=$2 profile=$3 seed=$4 cc=$5 flows=$6 secs=$7 at=$8 off=$9 split=${10}
    if ! "$here/scripts/lab/run.sh" --profile "$profile" --seed "$seed" --seconds "$secs" --cc "$cc" \
      --flows "$flows" --out "$out" --name "$name" --capture-at "$at" --offloads "$off" 2>> "$out/lab.$name.log"; then
      echo "make-corpus: $name failed (see $out/lab.$name.log); continuing" >&2
      rm -f "$out/$name.pcap"
      return 0
    fi
    local pcap=$out/$name.pcap wire packets drops
    "$nf" extract "$pcap" --out /dev/null -q --summary-json "$out/$name.summary.json"
    wire=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['counters']['counted_bytes'])" "$out/$name.summary.json")
    read -r packets drops < <(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['packets'], j['kernel_drops'])" "$out/$name.json")
    if [ "$gzip" = 1 ]; then gzip -f "$pcap"; pcap=$pcap.gz; fi
    # One short append per trace: lines from parallel traces do not interleave.
    echo "$name,$class,$profile,$seed,$cc,$flows,$secs,$at,$off,$split,$packets,$wire,$drops,$(basename "$pcap")" >> "$manifest"
    echo "make-corpus: $name: $packets packets, kernel drops $drops" >&2
  }
  lane() { # $1: class filter (bulk | other), $2: parallel traces
    local filter=$1 par=$2 running=0
    while IFS=, read -r name class profile seed cc flows secs at off split; do
      split=${split%$'\r'} # a plan with CRLF line ends (Python's csv module, Windows editors)
      [ "$name" = name ] && continue
      if [ "$filter" = bulk ]; then [ "$class" = bulk ] || continue; else [ "$class" = bulk ] && continue; fi
      grep -q "^$name," "$manifest" && continue
      if [ $(( $(date +%s) - start + secs + 5 )) -gt $(( budget_min * 60 )) ]; then
        echo "make-corpus: time budget spent; $name and later rows not started" >&2
        break
      fi
      one "$name" "$class" "$profile" "$seed" "$cc" "$flows" "$secs" "$at" "$off" "$split" &
      running=$((running + 1))
      if [ "$running" -ge "$par" ]; then wait -n || true; running=$((running - 1)); fi
    done < "$plan"
    wait
  }
  other=$(( jobs > 1 ? jobs - 1 : 1 ))
  if [ "$jobs" -gt 1 ]; then
    lane bulk 1 & bulk_lane=$!
    lane other "$other"
    wait "$bulk_lane" 2>/dev/null || true
  else
    lane bulk 1
    lane other 1
  fi
  echo "make-corpus: $(( $(wc -l < "$manifest") - 1 )) traces in the manifest after $(( ($(date +%s) - start) / 60 )) min; $manifest" >&2
  exit 0
fi
done_before=0
[ -s "$out/manifest.csv" ] && done_before=$(( $(wc -l < "$out/manifest.csv") - 1 ))
# A resumed run only needs time for the traces still missing.
need=$(( (traces - done_before) * (seconds + 4) ))
if [ "$need" -gt $(( budget_min * 60 )) ]; then
  echo "make-corpus: $traces traces of ${seconds}s need about $((need / 60)) min, over the ${budget_min} min budget; lower --traces or --seconds, or raise --budget-min" >&2
  exit 2
fi
cargo build --release --workspace -q --manifest-path "$here/Cargo.toml"
nf=$here/target/release/netforecast
read -ra P <<< "$profiles"
read -ra C <<< "$ccs"
mkdir -p "$out"
manifest=$out/manifest.csv
[ -s "$manifest" ] || echo "name,profile,seed,cc,flows,seconds,packets,wire_bytes,kernel_drops,pcap" > "$manifest"
start=$(date +%s)
made=0
for ((i = 0; i < traces; i++)); do
  if [ $(( $(date +%s) - start + seconds + 4 )) -gt $(( budget_min * 60 )) ]; then
    echo "make-corpus: time budget spent after $made traces" >&2
    break
  fi
  profile=${P[i % ${#P[@]}]}
  cc=${C[(i / ${#P[@]}) % ${#C[@]}]}
  seed=$((seed_base + i))
  flows=1; [ $((i % 4)) = 3 ] && flows=2; [ $((i % 8)) = 7 ] && flows=3
  name=$profile-s$seed-$cc-f$flows
  if grep -q "^$name," "$manifest"; then made=$((made + 1)); continue; fi
  if ! "$here/scripts/lab/run.sh" --profile "$profile" --seed "$seed" --seconds "$seconds" --cc "$cc" \
    --flows "$flows" --out "$out" --name "$name" 2>> "$out/lab.log"; then
    echo "make-corpus: $name failed (see $out/lab.log); continuing" >&2
    rm -f "$out/$name.pcap"
    continue
  fi
  pcap=$out/$name.pcap
  "$nf" extract "$pcap" --out /dev/null -q --summary-json "$out/$name.summary.json"
  wire=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['counters']['counted_bytes'])" "$out/$name.summary.json")
  read -r packets drops < <(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['packets'], j['kernel_drops'])" "$out/$name.json")
  if [ "$gzip" = 1 ]; then gzip -f "$pcap"; pcap=$pcap.gz; fi
  echo "$name,$profile,$seed,$cc,$flows,$seconds,$packets,$wire,$drops,$(basename "$pcap")" >> "$manifest"
  made=$((made + 1))
  echo "make-corpus: $made/$traces $name: $packets packets, kernel drops $drops" >&2
done
echo "make-corpus: $made traces in $(( ($(date +%s) - start) / 60 )) min; manifest $manifest" >&2
