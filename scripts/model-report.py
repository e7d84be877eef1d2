#!/usr/bin/env python3
"""Write the evaluation sections of model_files/README.md from the replay reports.

    scripts/model-report.py OUT DATA [COMMAND...]

OUT: the model directory with heldout-report.json, heldout-predictions.csv,
public-report.json and compare/*.json (written by scripts/train-model.sh);
DATA: the committed corpus (manifest.csv, features/). COMMAND: how it was made.
Prints Markdown: the corpus table, the held-out table per group and class, the
probability's calibration against "P(next < 20 | current < 20)" fitted on the
training windows, the public captures, and the architectures compared.
"""
import csv
import gzip
import json
import os
import sys

out, data = sys.argv[1], sys.argv[2]
command = sys.argv[3:]
manifest = list(csv.DictReader(open(os.path.join(data, "manifest.csv"))))
threshold = 20.0


def load(p):
    p = os.path.join(out, p)
    return json.load(open(p)) if os.path.exists(p) else None


def mase(scores, k="published"):
    m = scores.get(k)
    return m["mase"] if m else float("nan")


def f3(x):
    return "-" if x is None or x != x else f"{x:.3f}"


def f4(x):
    return "-" if x is None or x != x else f"{x:.4f}"


# Conditional frequencies fitted on the training windows only.
below_below = [0, 0]
above_below = [0, 0]
for r in manifest:
    if r["split"] != "train":
        continue
    with gzip.open(os.path.join(data, "features", r["name"] + ".csv.gz"), "rt") as f:
        prev_t = prev_x = None
        for row in csv.DictReader(f):
            t = float(row["window_start"])
            x = float(row["throughput_mbps"])
            if prev_t is not None and abs(t - prev_t - 0.05) < 1e-6:
                c = below_below if prev_x < threshold else above_below
                c[0] += x < threshold
                c[1] += 1
            prev_t, prev_x = t, x
p_bb = below_below[0] / max(1, below_below[1])
p_ab = above_below[0] / max(1, above_below[1])

print("## Corpus\n")
by = {}
for r in manifest:
    k = (r["group"], r["class"])
    e = by.setdefault(k, {"train": [0, 0], "heldout": [0, 0], "drops": 0})
    e[r["split"]][0] += 1
    e[r["split"]][1] += int(r["windows"])
    e["drops"] += int(r["kernel_drops"] or 0)
total = sum(int(r["windows"]) for r in manifest)
print(f"{len(manifest)} captures, {total:,} windows of 50 ms ({total * 0.05 / 3600:.2f} h); `data/corpus/manifest.csv`.\n")
print("| group | class | train captures | train windows | held-out captures | held-out windows |")
print("|---|---|---|---|---|---|")
for (g, c), e in sorted(by.items()):
    print(f"| {g} | {c} | {e['train'][0]} | {e['train'][1]:,} | {e['heldout'][0]} | {e['heldout'][1]:,} |")
print(f"\nKernel drops in the lab captures: {sum(e['drops'] for e in by.values())}.")

h = load("heldout-report.json")
if h:
    print("\n## Held-out evaluation\n")
    print(f"{len(h['captures'])} captures never used for training or validation, {h['windows']:,} windows. "
          "MASE is the forecast's MAE over persistence's on the same windows; *published* is what the "
          "daemon writes (the online combination), *model* the raw model.\n")
    group_of = {r["class"]: r["group"] for r in manifest}
    print("| group | class | captures | windows | published MASE | model MASE | EWMA MASE | Brier published | ECE published |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in sorted(h["per_class"], key=lambda c: (group_of.get(c["class"], ""), c["class"])):
        s = c["scores"]
        print(f"| {group_of.get(c['class'], '')} | {c['class']} | {c['captures']} | {c['windows']:,} | "
              f"{f3(mase(s))} | {f3(mase(s, 'model'))} | {f3(mase(s, 'ewma'))} | "
              f"{f4(c['calibration']['brier'])} | {f4(c['calibration']['ece'])} |")
    # Pooled per group: MAE ratios from the per-capture MAEs weighted by windows.
    group_by_name = {r["name"]: r["group"] for r in manifest}
    pooled = {}
    for c in h["per_capture"]:
        base = os.path.basename(c["name"])
        for ext in (".gz", ".pcapng", ".pcap"):
            base = base[: -len(ext)] if base.endswith(ext) else base
        g = group_by_name.get(base, "other")
        e = pooled.setdefault(g, [0.0, 0.0, 0.0, 0])
        e[0] += c["scores"]["published"]["mae_mbps"] * c["windows"]
        e[1] += c["scores"]["model"]["mae_mbps"] * c["windows"]
        e[2] += c["scores"]["persistence"]["mae_mbps"] * c["windows"]
        e[3] += c["windows"]
    print("\nPooled per group (MAE over persistence's MAE on the group's windows):\n")
    print("| group | windows | published MASE | model MASE |")
    print("|---|---|---|---|")
    for g, (p_, m_, b_, n_) in sorted(pooled.items()):
        print(f"| {g} | {n_:,} | {p_ / b_:.3f} | {m_ / b_:.3f} |")
    print(f"\nPooled: published MASE {f3(h['published']['mase'])}, model {f3(h['model']['mase'])}, "
          f"EWMA {f3(h['ewma']['mase'])}; ROC-AUC published {f4(h['published']['roc_auc'])}, "
          f"persistence {f4(h['persistence']['roc_auc'])}.")
    cal = h["calibration"]
    # Brier of the training-fitted conditional on the held-out windows.
    pred = os.path.join(out, "heldout-predictions.csv")
    cond = None
    if os.path.exists(pred):
        # One pass: the Brier of the training-fitted conditional, and no phantom
        # traffic (after a silent window, where the next is silent too and
        # persistence's 0 is right, how often is the published forecast 0?).
        se = n = after = zero = 0
        prev_t = prev_x = None
        for row in csv.DictReader(open(pred)):
            t = float(row["window_start"])
            x = float(row["actual_mbps"])
            if prev_t is not None and abs(t - prev_t - 0.05) < 1e-6:
                p = p_bb if prev_x < threshold else p_ab
                se += (p - (x < threshold)) ** 2
                n += 1
                if prev_x == 0 and x == 0:
                    after += 1
                    zero += float(row["predicted_mbps"]) == 0
            prev_t, prev_x = t, x
        cond = se / max(1, n)
        phantom = (after, zero)
    print(f"\nProbability (pooled held-out): published Brier {f4(cal['published']['brier'])}, log loss "
          f"{f4(cal['published']['log_loss'])}, ECE {f4(cal['published']['ece'])}; the model's own Brier "
          f"{f4(cal['model']['brier'])}, ECE {f4(cal['model']['ece'])}. References: P(next < 20 | current < 20) "
          f"= {p_bb:.3f} and P(next < 20 | current >= 20) = {p_ab:.3f} fitted on the training windows give Brier "
          f"{f4(cond)} here; the prevalence fitted on these windows {f4(cal['brier_prevalence'])}.\n")
    if os.path.exists(pred) and phantom[0]:
        print(f"No phantom traffic: of {phantom[0]:,} silent windows that followed a silent window, the published "
              f"forecast was exactly 0 for {phantom[1]:,} ({100 * phantom[1] / phantom[0]:.2f} %).\n")
    print("Reliability of the published probability (10 bins):\n")
    print("| bin | windows | mean forecast | observed |")
    print("|---|---|---|---|")
    for b in cal["published"]["bins"]:
        if b.get("count", 0):
            print(f"| {b['lo']:.1f}-{b['hi']:.1f} | {b['count']} | {b['mean_prob']:.3f} | {b['observed']:.3f} |")
    print("\nPer capture (published / model MASE):\n")
    print("| capture | windows | published | model |")
    print("|---|---|---|---|")
    for c in h["per_capture"]:
        print(f"| {os.path.basename(c['name'])} | {c['windows']} | {f3(mase(c['scores']))} | {f3(mase(c['scores'], 'model'))} |")
    if h.get("input_shift"):
        sh = h["input_shift"]
        print(f"\nInput shift: {sh['windows_over']} of {sh['windows_judged']} judged windows beyond the training "
              f"data's distance {sh['threshold']:.3f} (max {sh['max']:.3f}).")

p = load("public-report.json")
if p:
    print("\n## Public captures (../shared/fixtures/public)\n")
    print("| capture | windows | published MASE | model MASE | Brier published | ECE published |")
    print("|---|---|---|---|---|---|")
    for c in p["per_capture"]:
        print(f"| {os.path.basename(c['name'])} | {c['windows']} | {f3(mase(c['scores']))} | "
              f"{f3(mase(c['scores'], 'model'))} | {f4(c['calibration']['brier'])} | {f4(c['calibration']['ece'])} |")
    print(f"\nPooled: published MASE {f3(p['published']['mase'])}, model {f3(p['model']['mase'])}; "
          f"published Brier {f4(p['calibration']['published']['brier'])}, ECE {f4(p['calibration']['published']['ece'])}.")

cmp_dir = os.path.join(out, "compare")
if os.path.isdir(cmp_dir):
    print("\n## Architectures compared\n")
    print("Same training captures, same validation split (seed), same held-out captures. "
          "Validation MASE is what choices were made on; held-out is reported, not tuned on.\n")
    print("| architecture | validation MASE (model) | held-out MASE model | held-out MASE published | held-out ROC-AUC model | public MASE model | public MASE published |")
    print("|---|---|---|---|---|---|---|")
    for arch in sorted({f.split(".")[0] for f in os.listdir(cmp_dir)}):
        v = load(f"compare/{arch}.model.json")
        hh = load(f"compare/{arch}.heldout.json")
        pp = load(f"compare/{arch}.public.json")
        val = v["validation"]["metrics"]["model"]["mase"] if v else float("nan")
        print(f"| {arch} | {f3(val)} | {f3(hh['model']['mase']) if hh else '-'} | "
              f"{f3(hh['published']['mase']) if hh else '-'} | {f4(hh['model']['roc_auc'])} | "
              f"{f3(pp['model']['mase']) if pp else '-'} | {f3(pp['published']['mase']) if pp else '-'} |")

if command:
    print("\n## Make it again\n\n```sh")
    print(" ".join(command))
    print("```")
