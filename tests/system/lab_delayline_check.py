#!/usr/bin/env python3
"""Compare probe delays and loss with the applied schedule (see lab_delayline.sh).

Tolerances: mean one-way delay within 1.5 ms of the configured delay without
jitter (the delay line wakes with ppoll at sub-ms precision; the rest is the
kernel path); loss within 2.5 percentage points of 10 % (3000 probes: 4.5 sigma);
with 5 ms jitter the mean may rise by up to 6 ms, because releases never reorder
packets sent 2 ms apart, and the spread (standard deviation) lies in 2.5-6 ms."""
import csv
import statistics
import sys

applied, probes, sent, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
steps = [(int(r["time"].replace(".", "")), float(r["delay_ms"]), float(r["jitter_ms"]), float(r["loss"]))
         for r in csv.DictReader(open(applied))]
got = {int(r["seq"]): (int(r["sent_ns"]), int(r["recv_ns"])) for r in csv.DictReader(open(probes))}
first_sent = min(s for s, _ in got.values())
gap_ns = 2_000_000
phases = {i: {"sent": 0, "recv": [], "cfg": steps[i][1:]} for i in range(len(steps))}
for seq in range(sent):
    t = first_sent + seq * gap_ns  # nominal send time of lost probes
    if seq in got:
        t = got[seq][0]
    i = max(k for k, st in enumerate(steps) if st[0] <= t) if t >= steps[0][0] else 0
    # Skip probes within 300 ms after a step change, and the last 300 ms.
    if t - steps[i][0] < 300_000_000 or (i + 1 < len(steps) and steps[i + 1][0] - t < 300_000_000):
        continue
    if t > first_sent + (sent - 150) * gap_ns:
        continue
    phases[i]["sent"] += 1
    if seq in got:
        phases[i]["recv"].append((got[seq][1] - got[seq][0]) / 1e6)
fails = []
for i, p in phases.items():
    delay, jitter, loss = p["cfg"]
    d = p["recv"]
    if p["sent"] < 1000:
        fails.append(f"phase {i}: only {p['sent']} probes")
        continue
    mean, sd = statistics.mean(d), statistics.pstdev(d)
    p99 = sorted(d)[int(len(d) * 0.99)]
    lost = 1 - len(d) / p["sent"]
    print(f"delayline: phase {i}: configured delay {delay} ms, jitter {jitter} ms, loss {loss:.0%}; "
          f"measured mean {mean:.2f} ms, sd {sd:.2f} ms, p99 {p99:.2f} ms, loss {lost:.2%} over {p['sent']} probes")
    if jitter == 0:
        if abs(mean - delay) > 1.5:
            fails.append(f"phase {i}: mean delay {mean:.2f} ms, configured {delay}")
    else:
        if not (delay - 0.5 <= mean <= delay + 6):
            fails.append(f"phase {i}: mean delay {mean:.2f} ms with jitter, configured {delay}")
        if not (2.5 <= sd <= 6):
            fails.append(f"phase {i}: delay sd {sd:.2f} ms, configured jitter {jitter}")
    if abs(lost - loss) > 0.025:
        fails.append(f"phase {i}: loss {lost:.2%}, configured {loss:.0%}")
print(f"delayline: {log.strip()}")
for f in fails:
    print(f"delayline: FAIL {f}")
print(f"delayline: {0 if fails else 1} passed, {1 if fails else 0} failed")
sys.exit(1 if fails else 0)
