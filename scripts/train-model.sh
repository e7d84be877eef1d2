#!/usr/bin/env bash
# Train the shipped model from a lab corpus and judge it on held-out captures.
#
#   sudo scripts/train-model.sh [--corpus corpus] [--out model_files] [--holdout-profile cellular] [--seed 1]
#        [-- extra `netforecast train` options]   (default: -- --arch gbt, the shipped kind)
#
# Held out from training entirely (the test set): every trace of --holdout-profile
# (a profile the model never sees) and the highest-seed trace of every other
# profile (seeds never used in training). The rest is split by capture into
# training and validation (early stopping) by `netforecast train`. Then
# `netforecast replay` runs the held-out captures through the exported model and
# writes the pooled report next to the model: heldout-report.json, heldout.png.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=corpus out=model_files holdout=cellular seed=1 extra=(--arch gbt)
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --holdout-profile) holdout=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;  # replaces the default, e.g. -- --arch lstm
    *) echo "train-model: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -s "$corpus/manifest.csv" ] || { echo "train-model: no $corpus/manifest.csv; make one with scripts/lab/make-corpus.sh" >&2; exit 1; }
cargo build --release --workspace -q
nf=target/release/netforecast
mkdir -p "$corpus/features"
# name,profile,seed,cc,flows,seconds,packets,wire_bytes,kernel_drops,pcap
test_names=$(python3 - "$corpus/manifest.csv" "$holdout" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
held = {r["name"] for r in rows if r["profile"] == sys.argv[2]}
for p in {r["profile"] for r in rows} - {sys.argv[2]}:
    mine = [r for r in rows if r["profile"] == p]
    if len(mine) > 1:
        held.add(max(mine, key=lambda r: int(r["seed"]))["name"])
print("\n".join(sorted(held)))
PY
)
train_csv=() test_pcap=()
while IFS=, read -r name profile s cc flows secs packets wire drops pcap; do
  [ "$name" = name ] && continue
  csv=$corpus/features/$name.csv
  [ -s "$csv" ] || "$nf" extract "$corpus/$pcap" --out "$csv" -q
  if grep -qx "$name" <<< "$test_names"; then test_pcap+=("$corpus/$pcap"); else train_csv+=("$csv"); fi
done < "$corpus/manifest.csv"
echo "train-model: ${#train_csv[@]} captures for training and validation, ${#test_pcap[@]} held out:" >&2
printf '  %s\n' "${test_pcap[@]}" >&2
"$nf" train "${train_csv[@]}" --out "$out" --seed "$seed" "${extra[@]}"
"$nf" replay "${test_pcap[@]}" --model "$out" --report "$out/heldout-report.json" --plot "$out/heldout.png" -q
python3 - "$out/heldout-report.json" "$holdout" "$corpus" "$seed" "${extra[*]:-}" >> "$out/README.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
holdout, corpus, seed, extra = sys.argv[2:6]
print(f"\n## Held-out evaluation\n")
print(f"Captures never used for training or validation: every `{holdout}` trace (a profile the model never saw)")
print(f"and the highest-seed trace of every other profile. {len(r['captures'])} captures, {r['windows']} windows, "
      f"{r['packets']} packets, threshold {r['threshold_mbps']} Mbit/s; metrics pooled over all windows:\n")
print("| forecaster | R2 | MAE Mbit/s | RMSE Mbit/s | MASE | ROC-AUC | PR-AUC |")
print("|---|---|---|---|---|---|---|")
for k in ("model", "persistence", "mean_last_15", "ewma"):
    m = r[k]
    print(f"| {k} | {m['r2']:.4f} | {m['mae_mbps']:.3f} | {m['rmse_mbps']:.3f} | {m['mase']:.3f} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} |")
print(f"\nCongestion prevalence {r['model']['prevalence']:.3f}. Captures: " + ", ".join(c.split("/")[-1] for c in r["captures"]) + ".")
print("\n## Make it again\n\n```sh")
print("sudo scripts/lab/make-corpus.sh --out corpus --traces 48 --seconds 40 --budget-min 45 --gzip")
print(f"sudo scripts/train-model.sh --corpus {corpus} --out model_files --holdout-profile {holdout} --seed {seed}" + (f" -- {extra}" if extra else ""))
print("```\n\nThe corpus is made by the lab from real TCP stacks; seeds and schedules are deterministic, the traffic is")
print("not, so a rebuilt corpus gives a model with similar, not identical, numbers. `heldout-report.json` and")
print("`heldout.png` beside this file are the replay of the held-out captures.")
PY
sed -n '/## Held-out evaluation/,/Congestion prevalence/p' "$out/README.md"
