#!/usr/bin/env python3
"""Lab test: measured throughput follows the schedule (needs root).

Runs `scripts/lab/run.sh` for 25 s with a bottleneck stepping through 40, 150,
10, 100 and 25 Mbit/s every 5 s (20 ms one-way delay) and a backlogged bbr sender,
then bins the sender's data bytes (from the capture, via `netforecast extract
--filter "src host 198.18.0.1"`) into 1 s intervals and compares each with the
bottleneck rate of the schedule as applied. Intervals that start less than 1.5 s
after a rate change are transients (the sender probing up, a queue draining) and
are reported but not checked. Passes when every other interval is within 15 %.

The sender's own pauses are not the lab's: bbr's ProbeRTT (every 10 s without a new
RTT minimum) holds 4 segments in flight for 200 ms and more, a fifth of a second at
150 Mbit/s. Windows where the sender had under PAUSE_BIF bytes in flight are left out
of an interval's rate (counted and printed); an interval keeps at least half its windows.
"""
import csv
import io
import os
import subprocess
import sys
import tempfile

NF = os.environ.get("NETFORECAST", "target/release/netforecast")
NS = 1_000_000_000
W = 50_000_000
# Under 6 segments in flight: bbr's ProbeRTT (4), not a backlogged sender (its window
# is twice the path's bandwidth-delay product: 100 kB at 10 Mbit/s and 40 ms).
PAUSE_BIF = 6 * 1448


def main():
    if os.geteuid() != 0:
        print("lab_follow: needs root; skipped\nfollow: 0 passed, 0 failed, 1 skipped")
        return 0
    with tempfile.TemporaryDirectory() as td:
        plan = os.path.join(td, "plan.csv")
        with open(plan, "w") as f:
            f.write("time_s,rate_mbps,delay_ms,jitter_ms,loss\n")
            for i, rate in enumerate((40, 150, 10, 100, 25)):
                f.write(f"{5 * i},{rate},20,0,0\n")
        subprocess.run(["scripts/lab/run.sh", "--profile", "steps", "--schedule", plan, "--seconds", "25",
                        "--cc", "bbr", "--out", td, "--name", "t"], check=True)
        steps = [(int(r["time"].replace(".", "")), float(r["rate_mbps"]))
                 for r in csv.DictReader(open(os.path.join(td, "t.schedule.csv")))]
        out = subprocess.run([NF, "extract", os.path.join(td, "t.pcap"), "--filter", "src host 198.18.0.1",
                              "--out", "-", "-q"], check=True, capture_output=True, text=True).stdout
        # Bytes in flight need the ACKs too: the same windows over both directions.
        both = subprocess.run([NF, "extract", os.path.join(td, "t.pcap"), "--out", "-", "-q"],
                              check=True, capture_output=True, text=True).stdout
    def start_ns(r):
        return int(r["window_start"].replace(".", ""))
    bif_at = {start_ns(r): int(r["bif"]) for r in csv.DictReader(io.StringIO(both))}
    rows = []
    for r in csv.DictReader(io.StringIO(out)):
        if start_ns(r) not in bif_at:
            sys.exit(f"lab_follow: window {r['window_start']} of the sender's extract is missing from "
                     "the both-directions extract: the two extracts disagree")
        rows.append((start_ns(r), int(r["size"]), bif_at[start_ns(r)]))
    t0 = steps[0][0]
    bins, kept, paused = {}, {}, {}
    for start, size, bif in rows:
        b = (start - t0) // NS
        if bif < PAUSE_BIF:
            paused[b] = paused.get(b, 0) + 1
            continue
        bins[b] = bins.get(b, 0) + size
        kept[b] = kept.get(b, 0) + 1
    checked, fails = 0, []
    # Every second with a window, so that one whose windows all paused is seen.
    for b in sorted(set(bins) | set(paused)):
        lo, hi = t0 + b * NS, t0 + (b + 1) * NS
        active = [s for s in steps if s[0] <= lo]
        if not active or any(lo < s[0] < hi for s in steps) or b >= 24:
            continue
        since = lo - active[-1][0]
        rate = active[-1][1]
        mbps = bins.get(b, 0) * 8 / 1e6 * (NS // W) / max(kept.get(b, 0), 1)
        skip = since < 1.5 * NS
        err = (mbps - rate) / rate
        note = f", {paused[b]} windows of a sender pause left out" if paused.get(b) else ""
        print(f"lab_follow: second {b:2d}: bottleneck {rate:7.2f} Mbit/s, sent {mbps:7.2f} Mbit/s "
              f"({err:+.1%}){note}{'  transient, not checked' if skip else ''}")
        if not skip and kept.get(b, 0) < (NS // W) // 2:
            fails.append(f"second {b}: only {kept.get(b, 0)} windows with the sender backlogged")
            continue
        if skip:
            continue
        checked += 1
        if abs(err) > 0.15:
            fails.append(f"second {b}: {mbps:.2f} Mbit/s against {rate:.2f}")
    if checked < 12:
        fails.append(f"only {checked} seconds could be checked")
    for f in fails:
        print(f"lab_follow: FAIL {f}")
    print(f"follow: {0 if fails else 1} passed, {1 if fails else 0} failed ({checked} seconds checked)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
