#!/usr/bin/env bash
# Turn a built corpus (captures) into the committed corpus (features).
#
#   scripts/corpus-features.sh [--corpus corpus] [--out data/corpus]
#
# Reads every CORPUS/*/manifest.csv (scripts/lab/make-corpus.sh --plan and
# scripts/ns3/make-corpus.sh write them), extracts each capture's nine window
# features with `netforecast extract` into OUT/features/NAME.csv.gz, and
# writes OUT/manifest.csv: one row per capture with
#   name,group,class,profile,seed,cc,flows,seconds,capture_at,offloads,split,packets,wire_bytes,kernel_drops,windows,source
# group: backlogged (the bulk lab profiles), application (the lab's application
# profiles), wireless (ns-3); class: `bulk`, the application profile, or the
# ns-3 scenario (wifi, lte). source: the capture, relative to CORPUS.
# Anyone can retrain from OUT without the captures (scripts/train-model.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=corpus out=data/corpus
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "corpus-features: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
ls "$corpus"/*/manifest.csv >/dev/null 2>&1 || { echo "corpus-features: no $corpus/*/manifest.csv; build a corpus first (README, Making data)" >&2; exit 1; }
cargo build --release -q -p netforecast --manifest-path "$here/Cargo.toml"
nf=$here/target/release/netforecast
mkdir -p "$out/features"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "name,group,class,profile,seed,cc,flows,seconds,capture_at,offloads,split,packets,wire_bytes,kernel_drops,windows,source" > "$tmp"
for m in "$corpus"/*/manifest.csv; do
  src=$(basename "$(dirname "$m")")
  while IFS=, read -r name class profile seed cc flows secs at off split packets wire drops pcap; do
    [ "$name" = name ] && continue
    case "$class" in
      bulk) group=backlogged; cls=bulk ;;
      app) group=application; cls=$profile ;;
      wireless) group=wireless; cls=${profile%%-*} ;;
      *) group=$class; cls=$profile ;;
    esac
    f=$out/features/$name.csv.gz
    if [ ! -s "$f" ]; then
      "$nf" extract "$corpus/$src/$pcap" --out - -q | gzip -9 > "$f.tmp"
      mv "$f.tmp" "$f"
    fi
    windows=$(( $(gzip -dc "$f" | wc -l) - 1 ))
    echo "$name,$group,$cls,$profile,$seed,$cc,$flows,$secs,$at,$off,$split,$packets,$wire,$drops,$windows,$src/$pcap" >> "$tmp"
  done < "$m"
done
(head -1 "$tmp"; tail -n +2 "$tmp" | sort) > "$out/manifest.csv"
python3 - "$out/manifest.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    g = by.setdefault((r["group"], r["class"], r["split"]), [0, 0])
    g[0] += 1
    g[1] += int(r["windows"])
total = sum(int(r["windows"]) for r in rows)
print(f"corpus-features: {len(rows)} captures, {total} windows ({total * 0.05 / 3600:.2f} h of 50 ms windows)", file=sys.stderr)
for (g, c, s), (n, w) in sorted(by.items()):
    print(f"  {g:<12} {c:<12} {s:<8} {n:>3} captures {w:>8} windows", file=sys.stderr)
PY
