#!/usr/bin/env bash
# Train the shipped model from the committed corpus and judge it on held-out captures.
#
#   scripts/train-model.sh [--data data/corpus] [--corpus corpus] [--out model_files] [--seed 1]
#        [--compare "gbt lstm"] [-- extra `netforecast train` options]   (default: -- --arch lstm-gbt)
#
# Training reads only DATA (the committed features: scripts/corpus-features.sh
# made them), rows with split `train`; `netforecast train` keeps a seeded 20 %
# of those captures for validation (early stopping; architecture choices were
# made on it, never on the held-out set). Held out (split `heldout`): the
# highest seed of every trained profile, every trace of the application
# profiles `interactive` and `paced` (never trained on), and the highest ns-3
# seed. Judging them needs their captures: CORPUS (the folder the corpus
# scripts built) is replayed with the online stage, per class, into
# OUT/heldout-report.json; the busy public captures of ../shared/fixtures/public,
# when present, into OUT/public-report.json. Either is skipped, with a line
# saying so, when its captures are absent. --compare trains the named other
# architectures on the same split and replays them too (OUT/compare/), and
# scripts/model-report.py appends all of it to OUT/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
data=data/corpus corpus=corpus out=model_files seed=1 extra=(--arch lstm-gbt) compare=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --compare) compare=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;  # replaces the default, e.g. -- --arch gbt
    *) echo "train-model: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -s "$data/manifest.csv" ] || { echo "train-model: no $data/manifest.csv; make it with scripts/corpus-features.sh" >&2; exit 1; }
cargo build --release --workspace -q
nf=target/release/netforecast
train_csv=() test_pcap=() missing=0
while IFS=, read -r name group class profile s cc flows secs at off split packets wire drops windows source; do
  [ "$name" = name ] && continue
  if [ "$split" = train ]; then
    train_csv+=("$data/features/$name.csv.gz")
  elif [ -s "$corpus/$source" ]; then
    test_pcap+=("$corpus/$source")
  else
    missing=$((missing + 1))
  fi
done < "$data/manifest.csv"
echo "train-model: ${#train_csv[@]} captures for training and validation, ${#test_pcap[@]} held out ($missing held-out captures not in $corpus)" >&2
judge() { # model dir, held-out report, public report, predictions CSV (or "")
  if [ ${#test_pcap[@]} -gt 0 ]; then
    "$nf" replay "${test_pcap[@]}" --model "$1" --classes "$data/manifest.csv" --report "$2" -q \
      ${4:+--out "$4"} ${5:+--plot "$5"}
  else
    echo "train-model: no held-out captures under $corpus; skipping the held-out replay" >&2
  fi
  P=../shared/fixtures/public
  if [ -d "$P" ]; then
    "$nf" replay -q --model "$1" --report "$3" $P/dsack-littleendian.pcap.gz $P/sack-bigendian.pcap.gz \
      $P/zero-window-stall.pcap.gz $P/https-download-rawip.pcap $P/iperf-client-sll.pcapng $P/iperf-server-sll.pcapng
  else
    echo "train-model: no $P; skipping the public captures" >&2
  fi
}
"$nf" train "${train_csv[@]}" --out "$out" --seed "$seed" "${extra[@]}"
judge "$out" "$out/heldout-report.json" "$out/public-report.json" "$out/heldout-predictions.csv" "$out/heldout.png"
rm -rf "$out/compare"
for arch in $compare; do
  tmp=$(mktemp -d)
  "$nf" train "${train_csv[@]}" --out "$tmp" --seed "$seed" --arch "$arch"
  mkdir -p "$out/compare"
  cp "$tmp/model.json" "$out/compare/$arch.model.json"
  judge "$tmp" "$out/compare/$arch.heldout.json" "$out/compare/$arch.public.json" "" ""
  rm -rf "$tmp"
done
cp "$out/model.json" "$out/compare/${extra[1]:-shipped}.model.json" 2>/dev/null || true
[ -d "$out/compare" ] && cp "$out/heldout-report.json" "$out/compare/${extra[1]:-shipped}.heldout.json" && \
  { [ ! -s "$out/public-report.json" ] || cp "$out/public-report.json" "$out/compare/${extra[1]:-shipped}.public.json"; }
python3 scripts/model-report.py "$out" "$data" scripts/train-model.sh --data "$data" --corpus "$corpus" --out "$out" \
  --seed "$seed" ${compare:+--compare "\"$compare\""} -- "${extra[@]}" >> "$out/README.md"
rm -f "$out/heldout-predictions.csv"  # large; the report JSON has the scores
echo "train-model: wrote $out (README.md has the tables)" >&2
