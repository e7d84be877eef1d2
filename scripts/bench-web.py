#!/usr/bin/env python3
"""What live web clients cost the daemon, and what the page costs a browser
(needs root; a benchmark, not a test: it prints numbers).

The daemon captures at the sender of a sender/router/receiver chain
(tests/system/chain.py) while iperf3 sends at a steady 50 Mbit/s through a
100 Mbit/s bottleneck. In turn, each phase PHASE_S seconds (default 30):

  idle      no web client
  sse50     50 Server-Sent Events clients reading /api/v1/live (a helper
            process in the namespace holds them and counts what arrives)
  idle      again, to show the noise

For each phase: the daemon's CPU (utime + stime from /proc, % of one core), the
kernel's capture drops and the windows the daemon dropped (from /metrics).
Then, with --soak SECONDS, the page itself in headless chromium for that long
(scripts/web-check/page.js soak): its JS heap and the proportional memory (PSS)
of the renderer and of all chromium processes, every 30 s.

    sudo python3 scripts/bench-web.py [--phase 30] [--soak 600]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from chain import Chain  # noqa: E402
import web_netns  # noqa: E402

NF = os.path.join(ROOT, "target", "release", "netforecast")
MODEL = os.path.join(ROOT, "model_files")

CLIENTS = r"""
import socket, sys, threading, time
n, secs = int(sys.argv[1]), float(sys.argv[2])
got = [0] * n; updates = [0] * n
def run(i):
    s = socket.create_connection(("127.0.0.1", 9898))
    s.sendall(b"GET /api/v1/live HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    s.settimeout(2)
    end = time.time() + secs
    while time.time() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        if not b:
            break
        got[i] += len(b); updates[i] += b.count(b"event: update")
    s.close()
ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(got), min(updates), max(updates))
"""


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(chain, name):
    text = web_netns.ns_get(chain, "/metrics")
    return next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ")), 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", type=float, default=30)
    ap.add_argument("--soak", type=float, default=0)
    ap.add_argument("--clients", type=int, default=50)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-web: needs root (network namespaces)")
    td = tempfile.mkdtemp()
    procs = []
    chain = Chain(f"b{os.getpid() % 100000}", 10, 100)
    try:
        chain.__enter__()
        procs.append(subprocess.Popen(chain.in_rcv("iperf3", "-s", "-1", "-B", chain.rcv_addr),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        daemon = subprocess.Popen(chain.in_snd(NF, "--iface", chain.vs, "--model", MODEL, "--csv",
                                               os.path.join(td, "p.csv"), "--metrics-addr", "127.0.0.1:9898", "-q"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(daemon)
        deadline = time.time() + 30
        while time.time() < deadline and '"status"' not in web_netns.ns_get(chain, "/healthz"):
            time.sleep(0.3)
        total = 3 * a.phase + a.soak + 30
        procs.append(subprocess.Popen(chain.in_snd("iperf3", "-c", chain.rcv_addr, "-b", "50M", "-t", str(int(total))),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(8)
        if procs[-1].poll() is not None:
            sys.exit("bench-web: iperf3 ended at once; is the chain up?")
        rows = []
        for name in ("idle", f"sse{a.clients}", "idle"):
            c0, k0, w0, t0 = cpu_s(daemon.pid), metric(chain, "netforecast_kernel_drops"), \
                metric(chain, "netforecast_windows_dropped_total"), time.time()
            extra = ""
            if name.startswith("sse"):
                r = subprocess.run(chain.in_snd("python3", "-c", CLIENTS, str(a.clients), str(a.phase)),
                                   capture_output=True, text=True, timeout=a.phase + 60)
                b, lo, hi = (int(x) for x in r.stdout.split())
                extra = f"  ({b / 1e6:.1f} MB sent, {lo}-{hi} updates per client)"
            else:
                time.sleep(a.phase)
            dt = time.time() - t0
            cpu = 100 * (cpu_s(daemon.pid) - c0) / dt
            kd = metric(chain, "netforecast_kernel_drops") - k0
            wd = metric(chain, "netforecast_windows_dropped_total") - w0
            rows.append((name, cpu, kd, wd))
            print(f"bench-web: {name:6} daemon CPU {cpu:5.2f} % of a core, kernel drops {kd:.0f}, "
                  f"windows dropped {wd:.0f}{extra}", flush=True)
        base = (rows[0][1] + rows[2][1]) / 2
        print(f"bench-web: {a.clients} live clients add {rows[1][1] - base:+.2f} % of a core "
              f"(idle phases {rows[0][1]:.2f} and {rows[2][1]:.2f} %)")
        if a.soak > 0:
            web_netns.setup_driver()
            page = subprocess.Popen(chain.in_snd("node", os.path.join(web_netns.WORK, "page.js"), "soak",
                                                 "http://127.0.0.1:9898/", str(int(a.soak))),
                                    cwd=web_netns.WORK, stdout=subprocess.PIPE, text=True)
            procs.append(page)
            peak = 0.0
            for line in page.stdout:
                s = json.loads(line)
                if s.get("stage") == "baseline":
                    p = s["chromium_pss_mib"]
                    print(f"bench-web: chromium with an empty tab: largest process {p['largest']:.1f} MiB PSS, "
                          f"all {p['total']:.1f} MiB", flush=True)
                    continue
                if s.get("stage") != "sample":
                    print("bench-web:", line.strip())
                    continue
                p = s["chromium_pss_mib"]
                peak = max(peak, p["largest"])
                print(f"bench-web: page t={s['t']:4d} s  windows {s['nf']['windows']:6d}  JS heap "
                      f"{s['js_heap_mib']:6.1f} MiB  renderer PSS {p['largest']:6.1f} MiB  all chromium "
                      f"{p['total']:6.1f} MiB  errors {s['errors']}", flush=True)
            page.wait()
            print(f"bench-web: over {a.soak:.0f} s the page's renderer peaked at {peak:.1f} MiB PSS")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        chain.__exit__(None, None, None)
        shutil.rmtree(td, ignore_errors=True)


if __name__ == "__main__":
    # A TERM (timeout, CI ending) unwinds through the cleanup like an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
