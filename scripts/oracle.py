#!/usr/bin/env python3
"""tshark as the oracle for `netforecast extract` (FEATURES.md).

For each capture: run tshark 4.0 for per-packet fields, aggregate them into
windows exactly as FEATURES.md defines (independently of the Rust code), run
`netforecast extract --packets-out`, and compare:

  * windows: size, throughput_mbps and is_silent equal; the other features within
    1e-6 relative (plus 1e-12 absolute for values at zero);
  * per-packet samples: ack_rtt and bytes_in_flight equal, over the union of
    packets where either side has a sample;
  * per-packet expert flags: retransmission (tshark's retransmission, fast and
    spurious retransmission or out-of-order), duplicate_ack and zero_window equal
    on every counted packet.

All three must hold on at least --min-match (default 99.9 %) of windows / samples.
Prints one line per file and exits 1 if any file falls short.
"""

import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile

FIELDS = [
    "frame.number", "frame.time_epoch", "frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.hdr_len",
    "tcp.analysis.ack_rtt", "tcp.analysis.bytes_in_flight",
    "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order",
    "tcp.analysis.duplicate_ack", "tcp.analysis.zero_window",
]
# The engine's per-packet flags (extract --packets-out) and the tshark fields
# each one stands for: set when any of them is present.
FLAGS = {
    "retransmission": ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                       "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order"),
    "duplicate_ack": ("tcp.analysis.duplicate_ack",),
    "zero_window": ("tcp.analysis.zero_window",),
}
NS = 1_000_000_000


def parse_ns(text):
    """tshark prints seconds.fraction; the fraction is nanoseconds (it can have 10
    digits for broken files, where nsecs is not normalised). Integer arithmetic:
    a float cannot hold epoch nanoseconds."""
    text = text.strip()
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    secs, _, frac = text.partition(".")
    if len(frac) <= 9:
        nsec = int(frac.ljust(9, "0")) if frac else 0
    else:
        nsec = int(frac)
    v = int(secs) * NS + nsec
    return -v if neg else v


def tshark_packets(path):
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode not in (0, 2):  # 2: file cut short, packets before it are fine
        raise RuntimeError(f"tshark failed on {path}: {res.stderr.strip()}")
    pkts = []
    for line in res.stdout.splitlines():
        c = line.split("\t")
        c += [""] * (len(FIELDS) - len(c))
        rec = dict(zip(FIELDS, c))
        # Counted: a TCP segment whose length tshark knows and whose header is sane.
        if not rec["tcp.len"] or not rec["tcp.hdr_len"] or int(rec["tcp.hdr_len"]) < 20:
            continue
        src = rec["ip.src"] or rec["ipv6.src"]
        dst = rec["ip.dst"] or rec["ipv6.dst"]
        pkts.append({
            "frame": int(rec["frame.number"]),
            "ts": parse_ns(rec["frame.time_epoch"]),
            "len": int(rec["frame.len"]),
            "dir": (src, rec["tcp.srcport"], dst, rec["tcp.dstport"]),
            "rtt": parse_ns(rec["tcp.analysis.ack_rtt"]) if rec["tcp.analysis.ack_rtt"] else None,
            "bif": int(rec["tcp.analysis.bytes_in_flight"]) if rec["tcp.analysis.bytes_in_flight"] else None,
            "flags": tuple(int(any(rec[f] for f in fields)) for fields in FLAGS.values()),
        })
    return pkts


def windows_from_packets(pkts, width_ns, max_gap_ns):
    """FEATURES.md windows, written from the spec, not from the Rust code."""
    rows = []
    state = {"delay": 0.0, "bif": 0, "first": True}

    def close(k, acc):
        n = len(acc)
        size = sum(p["len"] for p in acc)
        rtts = [p["rtt"] for p in acc if p["rtt"] is not None]
        delay = (sum(rtts) / len(rtts)) / NS if rtts else state["delay"]
        last_bif = {}
        for p in acc:
            if p["bif"] is not None:
                last_bif[p["dir"]] = p["bif"]
        bif = sum(last_bif.values()) if last_bif else state["bif"]
        gaps = [acc[i]["ts"] - acc[i - 1]["ts"] for i in range(1, n)]
        if gaps:
            g, s1, s2 = len(gaps), sum(gaps), sum(x * x for x in gaps)
            iat_mean = s1 / g / NS
            # Population variance with exact integers: (g*sum(x^2) - sum(x)^2) / g^2.
            iat_std = math.sqrt((g * s2 - s1 * s1) / (g * g)) / NS
        else:
            iat_mean = iat_std = 0.0
        rows.append({
            "window_start": k * width_ns,
            "size": size,
            "delay": delay,
            "bif": bif,
            "iat_mean": iat_mean,
            "iat_std": iat_std,
            "throughput_mbps": size * 8 / (width_ns / NS) / 1e6,
            "delay_grad": 0.0 if state["first"] else delay - state["delay"],
            "bif_grad": 0 if state["first"] else bif - state["bif"],
            "is_silent": 1 if n == 0 else 0,
        })
        state.update(delay=delay, bif=bif, first=False)

    open_k = None
    acc = []
    for p in pkts:
        k = p["ts"] // width_ns
        if open_k is None:
            open_k = k
        elif k > open_k:
            if (k - open_k) * width_ns > max_gap_ns:
                close(open_k, acc)
                acc = []
                open_k = k
            else:
                while open_k < k:
                    close(open_k, acc)
                    acc = []
                    open_k += 1
        elif k < open_k and (open_k - k) * width_ns > max_gap_ns:
            close(open_k, acc)
            acc = []
            open_k = k
        acc.append(p)
    if open_k is not None:
        close(open_k, acc)
    return rows


def close_enough(a, b):
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) + 1e-12


def compare(path, nf, width_ms, min_match, verbose):
    width_ns = width_ms * 1_000_000
    with tempfile.TemporaryDirectory() as td:
        feat = os.path.join(td, "f.csv")
        pk = os.path.join(td, "p.csv")
        res = subprocess.run([nf, "extract", path, "--out", feat, "--packets-out", pk,
                              "--window-ms", str(width_ms), "-q"], capture_output=True, text=True)
        if res.returncode != 0:
            return False, f"netforecast failed: {res.stderr.strip()}"
        with open(feat) as f:
            ours = list(csv.DictReader(f))
        with open(pk) as f:
            our_pk = {int(r["frame"]): r for r in csv.DictReader(f)}
    pkts = tshark_packets(path)
    theirs = windows_from_packets(pkts, width_ns, 600 * NS)

    # Windows.
    wmatch = 0
    first_bad = None
    for i in range(max(len(ours), len(theirs))):
        if i >= len(ours) or i >= len(theirs):
            if first_bad is None:
                first_bad = f"window {i}: only one side has it"
            continue
        o, t = ours[i], theirs[i]
        ok = parse_ns(o["window_start"]) == t["window_start"]
        ok &= int(o["size"]) == t["size"] and int(o["is_silent"]) == t["is_silent"]
        ok &= float(o["throughput_mbps"]) == t["throughput_mbps"]
        for k in ("delay", "bif", "iat_mean", "iat_std", "delay_grad", "bif_grad"):
            ok &= close_enough(float(o[k]), float(t[k]))
        if ok:
            wmatch += 1
        elif first_bad is None:
            first_bad = f"window {i} ({o['window_start']}): ours {dict(o)} tshark {t}"
    nwin = max(len(ours), len(theirs))

    # Per-packet samples.
    smatch = stotal = 0
    counted_mismatch = 0
    bad_sample = None
    fmatch = ftotal = 0
    fcount = {k: 0 for k in FLAGS}
    bad_flags = None
    tframes = {p["frame"]: p for p in pkts}
    for fno in set(tframes) | set(our_pk):
        t = tframes.get(fno)
        o = our_pk.get(fno)
        if t is None or o is None:
            counted_mismatch += 1
            continue
        o_rtt = parse_ns(o["ack_rtt"]) if o["ack_rtt"] else None
        o_bif = int(o["bytes_in_flight"]) if o["bytes_in_flight"] else None
        o_flags = tuple(int(o[k]) for k in FLAGS)
        fmatch += o_flags == t["flags"]
        ftotal += 1
        for k, n in zip(FLAGS, t["flags"]):
            fcount[k] += n
        if o_flags != t["flags"] and bad_flags is None:
            bad_flags = f"frame {fno} {'/'.join(FLAGS)}: ours {o_flags} tshark {t['flags']}"
        for mine, ref, name in ((o_rtt, t["rtt"], "ack_rtt"), (o_bif, t["bif"], "bytes_in_flight")):
            if mine is None and ref is None:
                continue
            stotal += 1
            if mine == ref:
                smatch += 1
            elif bad_sample is None:
                bad_sample = f"frame {fno} {name}: ours {mine} tshark {ref}"
    wpct = 100.0 * wmatch / nwin if nwin else 100.0
    spct = 100.0 * smatch / stotal if stotal else 100.0
    fpct = 100.0 * fmatch / ftotal if ftotal else 100.0
    ok = wpct >= min_match and spct >= min_match and fpct >= min_match and counted_mismatch == 0
    counts = ", ".join(f"{n} {k}" for k, n in fcount.items())
    msg = (f"windows {wmatch}/{nwin} ({wpct:.3f}%), samples {smatch}/{stotal} ({spct:.3f}%), "
           f"flags {fmatch}/{ftotal} ({fpct:.3f}%; tshark {counts}), "
           f"packets counted by one side only {counted_mismatch}")
    if (not ok or verbose) and first_bad:
        msg += f"\n    first window mismatch: {first_bad}"
    if (not ok or verbose) and bad_sample:
        msg += f"\n    first sample mismatch: {bad_sample}"
    if (not ok or verbose) and bad_flags:
        msg += f"\n    first flag mismatch: {bad_flags}"
    return ok, msg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--netforecast", default="target/release/netforecast")
    ap.add_argument("--window-ms", type=int, default=50)
    ap.add_argument("--min-match", type=float, default=99.9)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    failed = 0
    for f in a.files:
        ok, msg = compare(f, a.netforecast, a.window_ms, a.min_match, a.verbose)
        print(f"{'ok  ' if ok else 'FAIL'} {f}: {msg}", flush=True)
        failed += not ok
    print(f"oracle: {len(a.files) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
