#!/usr/bin/env bash
# Train the shipped model from the committed corpus and judge it on held-out captures.
#
#   scripts/train-model.sh [--data data/corpus] [--corpus corpus] [--out model_files] [--seed 1]
#        [-- extra `netforecast train` options]   (default: -- --arch lstm-gbt)
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
# saying so, when its captures are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
data=data/corpus corpus=corpus out=model_files seed=1 extra=(--arch lstm-gbt)
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
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
"$nf" train "${train_csv[@]}" --out "$out" --seed "$seed" "${extra[@]}"
if [ ${#test_pcap[@]} -gt 0 ]; then
  "$nf" replay "${test_pcap[@]}" --model "$out" --classes "$data/manifest.csv" \
    --report "$out/heldout-report.json" --plot "$out/heldout.png" -q
else
  echo "train-model: no held-out captures under $corpus; skipping the held-out replay" >&2
fi
P=../shared/fixtures/public
if [ -d "$P" ]; then
  "$nf" replay -q --model "$out" --report "$out/public-report.json" $P/dsack-littleendian.pcap.gz $P/sack-bigendian.pcap.gz \
    $P/zero-window-stall.pcap.gz $P/https-download-rawip.pcap $P/iperf-client-sll.pcapng $P/iperf-server-sll.pcapng
else
  echo "train-model: no $P; skipping the public captures" >&2
fi
