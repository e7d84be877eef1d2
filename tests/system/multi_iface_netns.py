#!/usr/bin/env python3
"""One daemon, three interfaces (issue 16): a hub namespace with a veth to each of
three leaf namespaces; iperf3 from each leaf to the hub through a tbf of its own
(8, 24 and 60 Mbit/s); `netforecast --iface` three times in the hub, and a tcpdump
on each interface beside it.

Checked while the traffic runs: the API lists three streams, each with windows
coming in and its throughput near its own bottleneck (a stream mixed with
another would not be), and /metrics has a series per stream. Checked at the
end: each stream's byte total (the sum of its windows' `size`) equals the bytes
of the TCP frames its parallel tcpdump captured, exactly; with --top-hosts 4,
both hosts of each link are streams of their own, whose windows equal the
interface stream's window by window (every frame of a link is to or from both),
and whose bytes from their first window on equal tcpdump's for that address;
with --top-flows 4, iperf3's data connection on each link is a stream (its
control connection, a few bytes a second, is not) whose bytes equal tcpdump's
for that connection.
Window by window, a frame near a boundary can fall on the other side in
tcpdump's capture than in ours (the kernel timestamps each packet socket's copy
on its own; the interface streams show the same), so per window the test
reports, and asks 90 %; the CSV has the `iface` column with all three
interfaces and no host rows; no window was dropped.

Run as root: sudo python3 tests/system/multi_iface_netns.py [--bin target/release/netforecast]
"""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chain import influxd_conf  # noqa: E402

HUB = "nfmi-h"
LEAVES = [("nfmi-a", 8), ("nfmi-b", 24), ("nfmi-c", 60)]
PORT = 9898


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def hub_dev(i):
    return f"nfmih{i}"


def in_ns(ns, *cmd):
    return ["ip", "netns", "exec", ns, *cmd]


def get(path, port=PORT, data=None):
    """GET (or POST form data) inside the hub namespace (its loopback is not
    ours): the body, "" when nothing answers."""
    script = ("import sys,urllib.request as u\n"
              "d=sys.argv[2].encode() if len(sys.argv)>2 else None\n"
              "sys.stdout.write(u.urlopen(u.Request(sys.argv[1],data=d),timeout=5).read().decode())\n")
    args = [f"http://127.0.0.1:{port}{path}"] + ([data] if data is not None else [])
    r = subprocess.run(in_ns(HUB, "python3", "-c", script, *args), capture_output=True, text=True, timeout=15)
    return r.stdout


def pcap_tcp_frames(path):
    """(timestamp ns, original length, source, destination) of each IPv4/TCP
    frame of a little-endian Ethernet pcap with nanosecond timestamps (what
    tcpdump --time-stamp-precision=nano wrote)."""
    frames = []
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return frames
        magic = struct.unpack("<I", head[:4])[0]
        assert magic == 0xA1B23C4D, f"not a nanosecond pcap: {magic:#x}"
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            sec, nsec, incl, orig = struct.unpack("<IIII", rec)
            data = f.read(incl)
            if len(data) < 34:
                continue
            ethertype = struct.unpack(">H", data[12:14])[0]
            if ethertype == 0x0800 and data[23] == 6:
                src = ".".join(str(b) for b in data[26:30])
                dst = ".".join(str(b) for b in data[30:34])
                tcp = 14 + (data[14] & 0xF) * 4
                sport, dport = struct.unpack(">HH", data[tcp:tcp + 4])
                frames.append((sec * 1_000_000_000 + nsec, orig, src, dst, sport, dport))
    return frames


W_NS = 50_000_000


def window_bytes(cols):
    """{window start ns: bytes} of a stream's windows from the API."""
    return {round(t * 20) * W_NS: size for t, size in zip(cols.get("t", []), cols.get("size", []))}


def setup():
    sh("ip", "netns", "add", HUB)
    sh("ip", "-n", HUB, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", HUB, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    for i, (ns, rate) in enumerate(LEAVES):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        leaf_dev = f"nfmil{i}"
        sh("ip", "link", "add", hub_dev(i), "netns", HUB, "type", "veth", "peer", "name", leaf_dev, "netns", ns)
        sh("ip", "-n", HUB, "addr", "add", f"198.18.41.{4 * i + 1}/30", "dev", hub_dev(i))
        sh("ip", "-n", ns, "addr", "add", f"198.18.41.{4 * i + 2}/30", "dev", leaf_dev)
        for n, d in ((HUB, hub_dev(i)), (ns, leaf_dev)):
            sh("ip", "-n", n, "link", "set", d, "up")
            sh("ip", "netns", "exec", n, "ethtool", "-K", d, "tso", "off", "gso", "off", "gro", "off", check=False)
        sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", leaf_dev, "root", "tbf",
           "rate", f"{rate}mbit", "burst", "32000", "latency", "50ms")


def teardown():
    for ns in [HUB] + [n for n, _ in LEAVES]:
        sh("ip", "netns", "del", ns, check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/netforecast")
    ap.add_argument("--seconds", type=int, default=8)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (network namespaces)", file=sys.stderr)
        return 2
    binary = os.path.abspath(a.bin)
    teardown()
    procs = []
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="nf-multi-") as td:
        try:
            setup()
            pcaps = [os.path.join(td, f"if{i}.pcap") for i in range(len(LEAVES))]
            for i, p in enumerate(pcaps):
                procs.append(subprocess.Popen(
                    in_ns(HUB, "tcpdump", "-i", hub_dev(i), "-s", "96", "-B", "16384",
                          "--immediate-mode", "--time-stamp-precision=nano", "-w", p, "tcp"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            # influxd 1.6.7 in the hub: every point must carry its own interface.
            influxd_conf(os.path.join(td, "influxdb.conf"), td)
            procs.append(subprocess.Popen(in_ns(HUB, "influxd", "-config", os.path.join(td, "influxdb.conf")),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.time() + 30
            while time.time() < deadline and not get("/query", 8086, "q=CREATE DATABASE nf"):
                time.sleep(0.3)
            csv = os.path.join(td, "predictions.csv")
            err = open(os.path.join(td, "daemon.err"), "w")
            cmd = in_ns(HUB, binary, "-q", "--csv", csv, "--metrics-addr", f"127.0.0.1:{PORT}", "--top-hosts", "4", "--top-flows", "4")
            for i in range(len(LEAVES)):
                cmd += ["--iface", hub_dev(i)]
            env = dict(os.environ, INFLUX_URL="http://127.0.0.1:8086", INFLUX_VERSION="1", INFLUX_DB="nf")
            daemon = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
            procs.append(daemon)
            deadline = time.time() + 30
            while time.time() < deadline and '"ok"' not in get("/healthz"):
                time.sleep(0.2)
            check('"ok"' in get("/healthz"), "daemon healthy on three interfaces")
            time.sleep(1.0)  # tcpdump is up too (it started first)
            servers = []
            for i in range(len(LEAVES)):
                servers.append(subprocess.Popen(
                    in_ns(HUB, "iperf3", "-s", "-1", "-B", f"198.18.41.{4 * i + 1}", "-p", str(5301 + i)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs += servers
            time.sleep(0.5)
            clients = []
            for i, (ns, _) in enumerate(LEAVES):
                clients.append(subprocess.Popen(
                    in_ns(ns, "iperf3", "-c", f"198.18.41.{4 * i + 1}", "-p", str(5301 + i),
                          "-t", str(a.seconds), "-C", "cubic"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs += clients

            # While it runs: three streams, each moving, each near its own rate.
            time.sleep(a.seconds / 2)
            streams = json.loads(get("/api/v1/streams") or "[]")
            ids = sorted(s["id"] for s in streams if "_flow_" not in s["id"])
            flow_ids = sorted(s["id"] for s in streams if "_flow_" in s["id"])
            # iperf3's data connection is a stream; its control connection,
            # a few bytes a second, is not.
            check([f.split("_flow_")[0] for f in flow_ids] == [hub_dev(i) for i in range(len(LEAVES))],
                  f"one flow stream per link mid-run: {flow_ids}")
            want = [hub_dev(i) for i in range(len(LEAVES))]
            for i in range(len(LEAVES)):
                want += [f"{hub_dev(i)}_host_198.18.41.{4 * i + 1}", f"{hub_dev(i)}_host_198.18.41.{4 * i + 2}"]
            check(ids == sorted(want), f"three interface streams and each one's two hosts mid-run: {ids}")
            rates = []
            for i in range(len(LEAVES)):
                cols = json.loads(get(f"/api/v1/streams/{hub_dev(i)}/windows?since=0&limit=100000") or "{}")
                recent = cols.get("actual", [])[-20:]
                rates.append(sum(recent) / max(1, len(recent)))
            print("mid-run mean throughput of the last second per stream (Mbit/s):",
                  ", ".join(f"{r:.1f}" for r in rates))
            for i, (_, rate) in enumerate(LEAVES):
                # Both directions count (data and ACKs), the tbf caps the data.
                check(0.5 * rate < rates[i] < 1.3 * rate,
                      f"stream {hub_dev(i)} runs at its own bottleneck ({rates[i]:.1f} vs {rate} Mbit/s)")
            metrics = get("/metrics")
            for i in range(len(LEAVES)):
                check(f'netforecast_last_actual_mbps{{stream="{hub_dev(i)}"}}' in metrics,
                      f"/metrics has the stream {hub_dev(i)}")

            for c in clients:
                c.wait(timeout=a.seconds + 30)
            time.sleep(1.5)  # the last windows close
            totals = []
            host_windows = {}
            for i in range(len(LEAVES)):
                cols = json.loads(get(f"/api/v1/streams/{hub_dev(i)}/windows?since=0&limit=100000") or "{}")
                check(cols.get("first") == 0 and cols.get("missed", 0) == 0,
                      f"stream {hub_dev(i)} kept every window ({len(cols.get('t', []))})")
                totals.append(int(round(sum(cols.get("size", [])))))
                host_windows[(i, None)] = window_bytes(cols)
                for side in (1, 2):
                    addr = f"198.18.41.{4 * i + side}"
                    cols = json.loads(get(f"/api/v1/streams/{hub_dev(i)}_host_{addr}/windows?since=0&limit=100000") or "{}")
                    host_windows[(i, addr)] = window_bytes(cols)
                for fid in flow_ids:
                    if fid.startswith(hub_dev(i) + "_flow_"):
                        ends = fid.split("_flow_")[1].split("-")
                        key = tuple(sorted((e.rsplit("_", 1)[0], int(e.rsplit("_", 1)[1])) for e in ends))
                        cols = json.loads(get(f"/api/v1/streams/{fid}/windows?since=0&limit=100000") or "{}")
                        host_windows[(i, key)] = window_bytes(cols)
            end_metrics = get("/metrics")
            for name in ("netforecast_windows_dropped_total", "netforecast_kernel_drops"):
                v = [l.split()[-1] for l in end_metrics.splitlines() if l.startswith(name + " ")]
                check(v == ["0"], f"{name} is 0 ({v})")
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            check(daemon.returncode == 0, f"daemon exit status {daemon.returncode}")
            for p in procs[:len(LEAVES)]:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=10)
            for i, p in enumerate(pcaps):
                frames = pcap_tcp_frames(p)
                want = sum(f[1] for f in frames)
                check(totals[i] == want and want > 0,
                      f"{hub_dev(i)}: the stream's bytes {totals[i]} equal tcpdump's {want} ({len(frames)} frames)")
                # A host's stream, from its first window on: each window holds
                # the bytes of the frames to or from that host in it.
                for (j, addr), wins in host_windows.items():
                    if j != i:
                        continue
                    per = {}
                    for ts, n, src, dst, sp, dp in frames:
                        if isinstance(addr, tuple):
                            if tuple(sorted(((src, sp), (dst, dp)))) != addr:
                                continue
                        elif addr is not None and addr not in (src, dst):
                            continue
                        if True:
                            per[ts - ts % W_NS] = per.get(ts - ts % W_NS, 0) + n
                    first, last = min(wins), max(wins)
                    expect = {w: per.get(w, 0) for w in range(first, last + W_NS, W_NS)}
                    same = sum(1 for w in expect if wins.get(w) == expect[w])
                    what = f"flow {addr[0][0]}:{addr[0][1]}-{addr[1][0]}:{addr[1][1]}" if isinstance(addr, tuple) else f"host {addr}"
                    bad = [((w - first) // W_NS, wins.get(w), expect[w]) for w in expect if wins.get(w) != expect[w]]
                    if bad:
                        # A frame the kernel delivered after its window closed
                        # (later than the grace) counts in the next one, on
                        # the interface's stream as on the host's.
                        print(f"  {what}: windows (index from its first, ours, tcpdump's) that differ: {bad[:6]}")
                    total = int(sum(wins.values()))
                    if addr is None:
                        # The interface's own stream: its windows from the first, as above.
                        print(f"  {hub_dev(i)}: {same} of {len(expect)} windows identical to tcpdump's")
                        continue
                    # Every frame on this link is to or from both of its hosts:
                    # a host's windows are the interface's, exactly.
                    agg = host_windows[(i, None)]
                    # Except the stream's first window when it holds tcpdump's
                    # bytes and the interface's also holds frames of the window
                    # before, delivered after it closed (folded into the open
                    # one): those came before this stream began.
                    off = [((w - first) // W_NS, b, agg.get(w)) for w, b in wins.items()
                           if agg.get(w) != b and w <= max(agg)
                           and not (w == first and b == expect[w] and agg.get(w, 0) > b)]
                    if off and not isinstance(addr, tuple):
                        print(f"  host {addr}: windows (index, host's, interface's) that differ: {off[:6]}")
                    if not isinstance(addr, tuple):
                        check(not off, f"host {addr} on {hub_dev(i)}: every window equals the interface stream's")
                    # The stream starts mid-run, at a window boundary where a
                    # frame may sit on the other side in ours than in tcpdump's
                    # (the pairs printed above): what the interface's stream
                    # holds before that boundary beyond tcpdump's is missing
                    # from the count from there on, the same for the host.
                    # (A CI rehearsal failed here: one frame, 1514 bytes.)
                    surplus = int(round(sum(b for w, b in agg.items() if w < first)
                                        - sum(n for ts, n, *_ in frames if ts < first)))
                    if surplus:
                        print(f"  {what}: the interface's stream holds {surplus:+d} bytes against tcpdump's "
                              "before the stream's first window")
                    # A frame on the other side of a boundary makes two windows
                    # differ (more when the kernel hands over a burst late, as
                    # the printed pairs show); those are where the frames went,
                    # not lost: a window counts as placed when it equals
                    # tcpdump's or lies in a run of at most six (300 ms) whose
                    # sum does.
                    ws = sorted(expect)
                    d = [wins.get(w, 0) - expect[w] for w in ws]
                    placed = [x == 0 for x in d]
                    for k in range(2, 7):
                        for a0 in range(len(ws) - k + 1):
                            if sum(d[a0:a0 + k]) == 0:
                                placed[a0:a0 + k] = [True] * k
                    # Either placement of those frames is right: with the
                    # stream (the interface's side of the boundary) or before it
                    # (tcpdump's side, the late frames of the window before).
                    check(total in (sum(expect.values()), sum(expect.values()) - surplus)
                          and total > 1_000_000 and sum(placed) >= 0.95 * len(expect),
                          f"{what} on {hub_dev(i)}: {total} bytes from its first window on, tcpdump "
                          f"{sum(expect.values())}{f' ({-surplus:+d} at its first boundary)' if surplus else ''}; "
                          f"{same} of {len(expect)} windows identical, {sum(placed)} placed"
                          + ("" if all(placed) else
                             f"; not placed (index, ours - tcpdump's): "
                             f"{[(k, d[k]) for k in range(len(ws)) if not placed[k]][:12]}"))
            q = get("/query", 8086, "db=nf&q=SELECT count(actual_mbps) FROM traffic_prediction GROUP BY iface")
            counts = {}
            for series in json.loads(q or "{}").get("results", [{}])[0].get("series", []):
                counts[series["tags"]["iface"]] = series["values"][0][1]
            q = get("/query", 8086, "db=nf&q=SELECT count(actual_mbps) FROM traffic_prediction GROUP BY stream_kind, stream")
            tagged = sorted((x["tags"]["stream_kind"], x["tags"]["stream"])
                            for x in json.loads(q or "{}").get("results", [{}])[0].get("series", []))
            want_tags = sorted([("iface", hub_dev(i)) for i in range(len(LEAVES))]
                               + [("host", f"198.18.41.{4 * i + side}") for i in range(len(LEAVES)) for side in (1, 2)])
            flows_tagged = [t for t in tagged if t[0] == "flow"]
            check([t for t in tagged if t[0] != "flow"] == want_tags and len(flows_tagged) == len(LEAVES),
                  f"InfluxDB series by stream_kind and stream: {tagged}")
            with open(csv) as f:
                rows = f.read().splitlines()
            per_iface_rows = {hub_dev(i): sum(1 for r in rows[1:] if r.endswith("," + hub_dev(i)))
                              for i in range(len(LEAVES))}
            print("InfluxDB points per iface:", counts, "CSV rows per iface:", per_iface_rows)
            check(set(counts) == set(per_iface_rows) and all(counts[k] >= per_iface_rows[k] > 100 for k in counts),
                  "InfluxDB has each interface's points under its own iface tag")
            check(rows[0] == "window_start,actual_mbps,predicted_mbps,congestion_prob,iface",
                  f"predictions CSV header {rows[0]!r}")
            seen = {r.rsplit(",", 1)[1] for r in rows[1:]}
            check(seen == {hub_dev(i) for i in range(len(LEAVES))}, f"CSV rows of every interface: {sorted(seen)}")
            err.close()
            summary = open(os.path.join(td, "daemon.err")).read()
            print(summary.strip().splitlines()[-1] if summary.strip() else "(no summary)")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            teardown()
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("multi-interface test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
