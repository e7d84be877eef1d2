#!/usr/bin/env python3
"""Live load in network namespaces (needs root): how fast can netforecast capture
on this machine, and where do kernel drops begin?

For each workload, a veth pair between two namespaces this script makes (offloads
off, so every frame is a wire-sized packet), iperf3 traffic for --seconds, and
`netforecast extract --iface` capturing on the sender's side, its rows read as
they close. Prints per workload: offered rate, packets and Gbit/s captured, kernel
drops, window-close latency p50/p99 after the window's end, netforecast's CPU.

  sudo benches/live-load.py [--seconds 8] [--rates 500,1000,2000,0]

Workloads: bulk TCP through a tbf at each rate (0 = unshaped, as fast as the veth
goes), then a small-packet storm (16 flows, 64-byte writes, TCP_NODELAY).
"""
import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))
from netns_pair import NetnsPair, sh  # noqa: E402

NF = os.path.abspath(os.environ.get("NETFORECAST", "target/release/netforecast"))
W = 50_000_000


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def run(pair, seconds, iperf_args, label):
    td = tempfile.mkdtemp()
    summ = os.path.join(td, "s.json")
    nf = subprocess.Popen(pair.in_snd(NF, "extract", "--iface", pair.vs, "--out", "-", "--summary-json", summ, "-q"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrivals = []

    def reader():
        for line in nf.stdout:
            arrivals.append((time.time_ns(), line))
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(1)
    srv = subprocess.Popen(pair.in_rcv("iperf3", "-s", "-1", "-B", pair.rcv_addr), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    t0, c0 = time.time(), cpu_ticks(nf.pid)
    res = subprocess.run(pair.in_snd("iperf3", "-c", pair.rcv_addr, "-t", str(seconds), "-J", *iperf_args),
                         capture_output=True, text=True, timeout=seconds + 30)
    t1, c1 = time.time(), cpu_ticks(nf.pid)
    time.sleep(0.5)
    nf.send_signal(signal.SIGINT)
    nf.wait(timeout=20)
    th.join(timeout=10)
    srv.wait(timeout=10)
    try:
        sent_bps = json.loads(res.stdout)["end"]["sum_sent"]["bits_per_second"]
    except (ValueError, KeyError):
        sent_bps = 0.0
    s = json.load(open(summ))[0]
    c = s["counters"]
    k = s.get("kernel") or {}
    rows = list(csv.DictReader(io.StringIO("".join(l for _, l in arrivals))))
    busy = [(t, l) for t, l in arrivals[1:] if l.split(",")[-1].strip() == "0"]
    lat = sorted((t - (int(l.split(",")[0].replace(".", "")) + W)) / 1e6 for t, l in busy) or [0.0]
    captured_bytes = sum(int(r["size"]) for r in rows)
    busy_secs = len(busy) * W / 1e9 or 1
    cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
    print(f"{label:<28} {sent_bps / 1e9:7.3f} {c['frames'] / s['elapsed_s'] if s['elapsed_s'] else 0:>11.0f} "
          f"{c['frames'] / busy_secs:>11.0f} {captured_bytes * 8 / busy_secs / 1e9:8.3f} {k.get('dropped', 0):>8} "
          f"{lat[len(lat) // 2]:8.2f} {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:8.2f} {cpu:6.0f}%", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rates", default="500,1000,2000,0", help="tbf rates in Mbit/s; 0 = unshaped")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("live-load: needs root for network namespaces")
    print(f"{'workload':<28} {'offered':>7} {'pkts/s run':>11} {'pkts/s busy':>11} {'Gbit/s':>8} {'drops':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'CPU':>7}")
    for rate in [int(r) for r in a.rates.split(",")]:
        with NetnsPair(f"ll{os.getpid()}", 4, max(rate, 1)) as pair:
            if rate == 0:
                sh("ip", "netns", "exec", pair.snd, "tc", "qdisc", "del", "dev", pair.vs, "root", check=False)
            run(pair, a.seconds, [], f"bulk {'unshaped' if rate == 0 else f'{rate} Mbit/s'}")
    with NetnsPair(f"ls{os.getpid()}", 5, 1) as pair:
        sh("ip", "netns", "exec", pair.snd, "tc", "qdisc", "del", "dev", pair.vs, "root", check=False)
        run(pair, a.seconds, ["-P", "16", "-l", "64", "-N"], "small-packet storm (16x64 B)")


if __name__ == "__main__":
    main()
