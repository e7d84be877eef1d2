#!/usr/bin/env bash
# Runs two builds of netforecast over the committed captures and every file in
# ../shared/fixtures/public and says, file by file, whether their outputs are
# byte-identical: features CSV, per-packet CSV, predictions CSV, report JSON,
# and what each printed on error with its exit code (summaries, which carry
# timings, are silenced with -q).
#
#   scripts/compare-outputs.sh OLD_BIN_DIR NEW_BIN_DIR [-- NEW_REPLAY_ARGS...]
#
# NEW_REPLAY_ARGS go to the new build's replay only (an option the old one lacks).
#
# For example, against a checkout of an earlier commit built in /tmp/old:
#   scripts/compare-outputs.sh /tmp/old/target/release target/release -- --model-only
set -uo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2; shift 2
[ "${1:-}" = -- ] && shift
replay_args=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
files=(tests/data/*.pcap tests/data/*.pcap.gz)
[ -d ../shared/fixtures/public ] && for f in ../shared/fixtures/public/*; do
  case "$f" in *.md) ;; *) files+=("$f") ;; esac
done
run() { # BIN OUT REPLAY_ARGS...
  local bin=$1 out=$2; shift 2; mkdir -p "$out"
  for f in "${files[@]}"; do
    local n; n=$(basename "$f")
    "$bin/netforecast" extract "$f" --out "$out/$n.features.csv" --packets-out "$out/$n.packets.csv" -q 2> "$out/$n.extract.err"
    echo "exit $?" >> "$out/$n.extract.err"
    "$bin/netforecast" replay "$@" "$f" --model model_files --out "$out/$n.predictions.csv" \
      --report "$out/$n.report.json" -q 2> "$out/$n.replay.err"
    echo "exit $?" >> "$out/$n.replay.err"
  done
}
run "$old" "$work/old"
run "$new" "$work/new" "${replay_args[@]}"
same=0 differ=0
for f in "$work"/old/*; do
  n=$(basename "$f")
  if [[ $n == *.report.json ]]; then
    # Fields the old report has must be equal; new fields may be added.
    python3 - "$f" "$work/new/$n" <<'PY' && r=0 || r=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
bad = [k for k in a if a[k] != b.get(k)]
if bad:
    print("  fields differ:", ", ".join(bad))
    sys.exit(1)
PY
  else
    cmp -s "$f" "$work/new/$n" && r=0 || r=1
  fi
  if [ $r = 0 ]; then same=$((same + 1)); else differ=$((differ + 1)); echo "differs: $n"; fi
done
echo "compare-outputs: $same identical, $differ different (${#files[@]} captures)"
[ "$differ" = 0 ]
