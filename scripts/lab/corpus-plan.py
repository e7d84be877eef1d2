#!/usr/bin/env python3
"""Print the corpus plan (CSV) that scripts/lab/make-corpus.sh --plan plays.

    scripts/lab/corpus-plan.py [--scale 1.0] > plan.csv

One row per trace: name,class,profile,seed,cc,flows,seconds,capture_at,offloads,split.
Deterministic: the same plan every time. Classes:
  bulk  the backlogged lab profiles (4 seeds each, 60 s; two more seeds of
        3 flows each, 207 and 211, for training: seeds 200-202 run 1, 1 and 2
        flows, so 3 flows were only ever held out)
  app   video, web, mixture (8 seeds each, 180 s) and interactive, paced
        (4 seeds each, 180 s: held out entirely, never trained on)
Host realism varies with the seed: congestion control cycles reno/cubic/bbr,
offloads are on for every other trace, every third trace is captured at the
receiver instead of the sender. split: `train` or `heldout` (the highest seed
of every trained profile, and every trace of a held-out profile).
The ns-3 Wi-Fi and LTE traces come from scripts/ns3/make-corpus.sh.
"""
import sys

BULK = ["steps", "ramps", "random-walk", "outages", "cellular", "loss-bursts", "delay-steps", "on-off"]
APPS_TRAINED = ["video", "web", "mixture"]
APPS_HELDOUT = ["interactive", "paced"]
CCS = ["cubic", "bbr", "reno"]

scale = 1.0
if "--scale" in sys.argv:
    scale = float(sys.argv[sys.argv.index("--scale") + 1])

print("name,class,profile,seed,cc,flows,seconds,capture_at,offloads,split")
i = 0


def row(cls, profile, seed, seconds, heldout):
    global i
    cc = CCS[i % 3]
    flows = 1 if cls == "app" else [1, 1, 2, 3][seed % 4]
    at = "receiver" if i % 3 == 2 else "sender"
    off = "on" if i % 2 == 1 else "off"
    name = f"{profile}-s{seed}-{cc}-f{flows}-{at[0]}{'o' if off == 'on' else ''}"
    split = "heldout" if heldout else "train"
    print(f"{name},{cls},{profile},{seed},{cc},{flows},{max(10, round(seconds * scale))},{at},{off},{split}")
    i += 1


for seed in range(200, 204):
    for p in BULK:
        row("bulk", p, seed, 60, seed == 203)
for seed in range(300, 308):
    for p in APPS_TRAINED:
        row("app", p, seed, 180, seed == 307)
    if seed < 304:
        for p in APPS_HELDOUT:
            row("app", p, seed, 180, True)
# Appended, so the rows above keep their congestion control, side and offloads.
for seed in (207, 211):
    for p in BULK:
        row("bulk", p, seed, 60, False)
