#!/usr/bin/env python3
"""The lab's application profiles, run for real (needs root): a paced trace with
offloads on captured at the receiver, and a web trace captured at the sender.

Checks that each client finished its requests with no failure, that the web
capture has both busy and silent windows (page loads and think times, not a
backlogged flow), that the paced flow's busy windows sit near its requested rates (at most
5 Mbit/s: kernel pacing or a rate-limited writer, not the 3-100 Mbit/s link), and
that the web trace opened many short connections.
"""
import csv
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NF = os.path.join(HERE, "target/release/netforecast")


def run(profile, seed, seconds, extra, out):
    subprocess.run([os.path.join(HERE, "scripts/lab/run.sh"), "--profile", profile, "--seed", str(seed),
                    "--seconds", str(seconds), "--out", out, "--name", profile] + extra,
                   check=True, stderr=subprocess.DEVNULL, timeout=seconds + 60)
    client = open(os.path.join(out, profile + ".client.log")).read()
    m = re.search(r"(\d+) requests, (\d+) bytes, (\d+) failures", client)
    summary = os.path.join(out, profile + ".summary.json")
    feats = os.path.join(out, profile + ".csv")
    subprocess.run([NF, "extract", "-q", os.path.join(out, profile + ".pcap"), "--out", feats,
                    "--summary-json", summary], check=True)
    rows = list(csv.DictReader(open(feats)))
    flows = json.load(open(summary))[0]["counters"]["flow"]["flows_created"]
    return client, m, rows, flows


def main():
    if os.geteuid() != 0:
        print("lab_apps: needs root; skipped")
        return 0
    failures = []
    with tempfile.TemporaryDirectory() as td:
        client, m, rows, flows = run("paced", 4, 20, ["--offloads", "on", "--capture-at", "receiver"], td)
        busy = [float(r["throughput_mbps"]) for r in rows if r["is_silent"] == "0"]
        silent = sum(r["is_silent"] == "1" for r in rows)
        print(f"lab_apps: paced: {client.strip()}; {len(busy)} busy and {silent} silent windows, "
              f"busy median {sorted(busy)[len(busy) // 2] if busy else 0:.2f} Mbit/s")
        if not m or int(m.group(3)) != 0 or int(m.group(1)) == 0:
            failures.append(f"paced client: {client}")
        if not busy:
            failures.append("paced: no busy window")
        elif sorted(busy)[len(busy) * 9 // 10] > 7.5:
            failures.append(f"paced: 90th percentile {sorted(busy)[len(busy) * 9 // 10]:.1f} Mbit/s, above 5 Mbit/s pacing")

        client, m, rows, flows = run("web", 3, 20, [], td)
        silent = sum(r["is_silent"] == "1" for r in rows)
        print(f"lab_apps: web: {client.strip()}; {flows} flows, {silent} of {len(rows)} windows silent")
        if not m or int(m.group(3)) != 0 or int(m.group(1)) < 20:
            failures.append(f"web client: {client}")
        if flows < 20:
            failures.append(f"web: only {flows} connections")
        if silent == 0:
            failures.append("web: no think time between pages")
    for f in failures:
        print("lab_apps: FAIL " + f)
    print(f"lab_apps: {'0 failed' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
