#!/usr/bin/env python3
"""Events against ground truth: replays lab captures and scores the events of
their reports against the schedules the lab played (README "Alerts").

  scripts/event-timing.py [--manifest data/corpus/manifest.csv] [--corpus corpus]
                          [--split heldout] [--group backlogged] [--json OUT]

Ground truth, from each capture's NAME.schedule.csv (Unix time, rate Mbit/s, ...):
- a capacity drop is a step to at most half the previous rate; a `capacity_drop`
  event starting within 5 s after it detects it (delay = event start - step);
  a `capacity_drop` event detecting none is a false alarm;
- a congestion onset is a window below the model's threshold after at least
  20 windows (1 s) at or above it, from the replay's predictions CSV; a
  `congestion_ahead` event active at the window before the onset warned of it
  (lead time = onset - event start, 0 if it started at that window).

Prints per capture and pooled: drops detected, delay median and p90, false
alarms per hour; onsets warned, lead time median; and writes it all as JSON.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NF = os.path.join(ROOT, "target", "release", "netforecast")
DETECT_S = 5.0


def schedule_drops(path):
    rows = list(csv.DictReader(open(path)))
    drops = []
    for prev, cur in zip(rows, rows[1:]):
        a, b = float(prev["rate_mbps"]), float(cur["rate_mbps"])
        if b <= 0.5 * a:
            drops.append((float(cur["time"]), a, b))
    return drops


def onsets(pred_path, threshold):
    rows = [r for r in csv.reader(open(pred_path))][1:]
    out, above = [], 0
    for r in rows:
        t, actual = float(r[0]), float(r[1])
        if actual >= threshold:
            above += 1
        else:
            if above >= 20:
                out.append(t)
            above = 0
    return out


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default=os.path.join(ROOT, "data/corpus/manifest.csv"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "corpus"))
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--group", default="backlogged")
    ap.add_argument("--json")
    a = ap.parse_args()
    caps = [r for r in csv.DictReader(open(a.manifest))
            if r["split"] == a.split and r["group"] == a.group and r["source"].startswith("lab/")]
    if not caps:
        sys.exit(f"event-timing: no {a.group} captures in split {a.split} of {a.manifest}")
    pooled = {"drops": 0, "detected": 0, "delays_s": [], "false_alarms": 0, "hours": 0.0,
              "onsets": 0, "warned": 0, "leads_s": []}
    per = []
    with tempfile.TemporaryDirectory() as td:
        for c in caps:
            pcap = os.path.join(a.corpus, c["source"])
            sched = pcap.replace(".pcap.gz", ".schedule.csv").replace(".pcap", ".schedule.csv")
            if not (os.path.exists(pcap) and os.path.exists(sched)):
                print(f"event-timing: {c['name']}: capture or schedule missing, skipped", file=sys.stderr)
                continue
            rep, pred = os.path.join(td, "r.json"), os.path.join(td, "p.csv")
            subprocess.run([NF, "replay", pcap, "-q", "--report", rep, "--out", pred], check=True)
            r = json.load(open(rep))
            thr = r["threshold_mbps"]
            ev = r["events"]
            cap_ev = [e for e in ev if e["kind"] == "capacity_drop"]
            cong_ev = [e for e in ev if e["kind"] == "congestion_ahead"]
            drops = schedule_drops(sched)
            used = set()
            delays = []
            for t, _, _ in drops:
                hit = [i for i, e in enumerate(cap_ev)
                       if 0 <= e["start_ns"] / 1e9 - t <= DETECT_S]
                if hit:
                    used.add(hit[0])
                    delays.append(cap_ev[hit[0]]["start_ns"] / 1e9 - t)
            false = len(cap_ev) - len(used)
            ons = onsets(pred, thr)
            leads = []
            for t in ons:
                before = t - 0.05
                w = [e for e in cong_ev if e["start_ns"] / 1e9 <= before < e["end_ns"] / 1e9]
                if w:
                    leads.append(t - w[0]["start_ns"] / 1e9)
            hours = float(c["seconds"]) / 3600
            row = {"name": c["name"], "drops": len(drops), "detected": len(delays),
                   "delay_median_s": statistics.median(delays) if delays else None,
                   "false_alarms": false, "onsets": len(ons), "warned": len(leads),
                   "lead_median_s": statistics.median(leads) if leads else None,
                   "events": {k: sum(1 for e in ev if e["kind"] == k) for k in
                              ("congestion_ahead", "capacity_drop", "forecast_degraded")}}
            per.append(row)
            print(f"{c['name']}: drops {len(delays)}/{len(drops)} detected"
                  f" (median delay {row['delay_median_s'] if delays else '-'} s), {false} false alarms;"
                  f" onsets warned {len(leads)}/{len(ons)} (median lead {row['lead_median_s'] if leads else '-'} s)")
            pooled["drops"] += len(drops)
            pooled["detected"] += len(delays)
            pooled["delays_s"] += delays
            pooled["false_alarms"] += false
            pooled["hours"] += hours
            pooled["onsets"] += len(ons)
            pooled["warned"] += len(leads)
            pooled["leads_s"] += leads
    p = pooled
    summary = {
        "captures": len(per),
        "capacity_drops": p["drops"],
        "detected": p["detected"],
        "detection_delay_median_s": statistics.median(p["delays_s"]) if p["delays_s"] else None,
        "detection_delay_p90_s": pct(p["delays_s"], 0.9),
        "false_alarms": p["false_alarms"],
        "false_alarms_per_hour": p["false_alarms"] / p["hours"] if p["hours"] else None,
        "congestion_onsets": p["onsets"],
        "warned": p["warned"],
        "lead_time_median_s": statistics.median(p["leads_s"]) if p["leads_s"] else None,
        "per_capture": per,
    }
    print(f"\npooled over {len(per)} captures ({p['hours'] * 60:.0f} min): capacity drops detected"
          f" {p['detected']}/{p['drops']}, delay median {summary['detection_delay_median_s']} s,"
          f" p90 {summary['detection_delay_p90_s']} s; {p['false_alarms']} false alarms"
          f" ({summary['false_alarms_per_hour'] or 0:.1f}/h); congestion onsets warned"
          f" {p['warned']}/{p['onsets']}, lead median {summary['lead_time_median_s']} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
