#!/usr/bin/env python3
"""Fault injection for the daemon (needs root):

  * the interface vanishes during live capture: one clear error line, exit 1,
    and the windows forecast before it are in the CSV (flushed);
  * one of two interfaces vanishes: one error line naming it, /healthz 503 naming
    the capture, the other interface's windows go on, and SIGTERM ends it with 0;
  * the CSV's disk is full (a 4 KiB tmpfs in a private mount namespace): one
    error line, the daemon keeps forecasting, counts the rows it could not write,
    and exits 0 on SIGTERM;
  * the capture drops packets (the daemon, with a 1 MiB kernel buffer, is
    stopped for 3 s while iperf3 sends through a sender/router/receiver chain):
    once it runs again, netforecast_kernel_drops is above 0 and a
    capture_degraded event starts (GET /api/v1/events, the Prometheus gauge),
    and it ends after 10 s without a loss;
  * TCP stalls: the router's link to the receiver goes down for 5 s under an
    iperf3 transfer (the sender retransmits, nothing is acknowledged): a
    link_stall event, critical, that ends when the link is back; then a
    receiver that stops reading for 8 s (its window closes, the sender probes):
    a zero_window event, not a link stall, that ends when it reads again.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

NF = os.path.abspath(os.environ.get("NETFORECAST", "target/release/netforecast"))
MODEL = os.path.abspath(os.environ.get("NETFORECAST_MODEL", "model_files"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chain import Chain  # noqa: E402


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def main():
    if os.geteuid() != 0:
        print("faults: needs root; skipped\nfaults: 0 passed, 0 failed, 1 skipped")
        return 0
    fails = []
    ns = f"nff{os.getpid()}"
    td = tempfile.mkdtemp()
    try:
        # 1. The interface vanishes.
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "add", "fa", "type", "veth", "peer", "name", "fb")
        sh("ip", "-n", ns, "link", "set", "fa", "up")
        sh("ip", "-n", ns, "link", "set", "fb", "up")
        csv = os.path.join(td, "v.csv")
        p = subprocess.Popen(["ip", "netns", "exec", ns, NF, "--iface", "fa", "--metrics-addr", "", "--csv", csv, "-q"],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        sh("ip", "-n", ns, "link", "del", "fa")
        try:
            err = p.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            p.kill()
            err = p.communicate()[1]
            fails.append("the daemon kept running after its interface vanished")
        rows = sum(1 for _ in open(csv)) - 1 if os.path.exists(csv) else 0
        print(f"faults: interface gone: exit {p.returncode}, {rows} CSV rows flushed, stderr: {err.strip()}")
        if p.returncode != 1 or len(err.strip().splitlines()) != 1 or "fa" not in err:
            fails.append(f"vanished interface: exit {p.returncode}, stderr {err!r}")
        if rows < 20:
            fails.append(f"only {rows} rows were flushed before the interface vanished")

        # 1b. One of two interfaces vanishes: the other goes on.
        one_of_two(ns, td, fails)

        # 2. The CSV's disk is full.
        mnt = os.path.join(td, "tiny")
        os.mkdir(mnt)
        csv2 = os.path.join(mnt, "p.csv")
        script = f"mount -t tmpfs -o size=4k tmpfs {mnt} && exec {NF} --iface lo --metrics-addr '' --csv {csv2}"
        p = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stderr=subprocess.PIPE, text=True)
        # 10 s: ~180 rows of ~45 bytes, twice the 4 KiB (6 s made ~90 rows, which a
        # slow start under load could fit into 4 KiB: the test then saw no error).
        time.sleep(10)
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=20)[1]
        summary = [l for l in err.splitlines() if "stopped after" in l]
        print(f"faults: disk full: exit {p.returncode}; {summary[0] if summary else err.strip()[-300:]}")
        nospace = [l for l in err.splitlines() if "No space left" in l or "space" in l.lower()]
        if p.returncode != 0 or not summary:
            fails.append(f"disk full: exit {p.returncode}, stderr {err[-300:]!r}")
        else:
            s = summary[0]
            forecasts = int(s.split(" forecasts")[0].split()[-1])
            failed = int(s.split(" failed)")[0].split("(")[-1])
            if forecasts < 80 or failed == 0:
                fails.append(f"disk full: {forecasts} forecasts, {failed} rows counted as failed")
        if len(nospace) != 1:
            fails.append(f"disk full: expected one error line about space, got {nospace}")

        # 3. The capture drops packets.
        capture_drops(td, fails)
        # 4. TCP stalls: the path, then a receiver.
        stalls(td, fails)
    finally:
        sh("ip", "netns", "del", ns, check=False)
    for f in fails:
        print(f"faults: FAIL {f}")
    print(f"faults: {0 if fails else 1} passed, {1 if fails else 0} failed")
    return 1 if fails else 0


def one_of_two(ns, td, fails):
    from daemon_netns import ns_get
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    for a, b in (("ga", "gb"), ("ha", "hb")):
        sh("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "-n", ns, "link", "set", a, "up")
        sh("ip", "-n", ns, "link", "set", b, "up")
    csv = os.path.join(td, "two.csv")
    p = subprocess.Popen(["ip", "netns", "exec", ns, NF, "--iface", "ga,ha", "--metrics-addr", "127.0.0.1:9897",
                          "--csv", csv, "--top-hosts", "0", "--top-flows", "0"],
                         stderr=subprocess.PIPE, text=True)

    def rows(iface):
        if not os.path.exists(csv):
            return 0
        with open(csv) as f:
            head = f.readline().strip().split(",")
            k = head.index("iface") if "iface" in head else None
            return sum(1 for line in f if k is not None and line.strip().split(",")[k] == iface)

    time.sleep(3)
    sh("ip", "-n", ns, "link", "del", "ga")
    time.sleep(2)
    before = rows("ha")
    h = ns_get(ns, "http://127.0.0.1:9897/healthz")
    time.sleep(2)
    after = rows("ha")
    alive = p.poll() is None
    p.send_signal(signal.SIGTERM)
    try:
        err = p.communicate(timeout=20)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        err = p.communicate()[1]
    errors = [ln for ln in err.splitlines() if "ERROR" in ln or "error" in ln.lower()]
    print(f"faults: one of two interfaces gone: running {alive}, ha's CSV rows {before} -> {after} in 2 s, "
          f"/healthz {h.stderr.strip()} {h.stdout[:200]}, exit {p.returncode}")
    if not alive:
        fails.append(f"one of two interfaces vanished and the daemon stopped: {err[-300:]!r}")
    if after - before < 20:
        fails.append(f"the other interface's windows did not go on: {before} -> {after} rows in 2 s")
    hj = json.loads(h.stdout or "{}")
    detail = (hj.get("parts", {}).get("capture") or {}).get("detail") or ""
    if h.stderr.strip() != "503" or "ga" not in detail:
        fails.append(f"/healthz after one interface vanished: {h.stderr} {h.stdout}")
    if p.returncode != 0 or len(errors) != 1 or "ga" not in errors[0]:
        fails.append(f"one of two: exit {p.returncode}, error lines {errors}")


def event_records(chain, kind):
    """(change, event) of every record of `kind` the daemon in `chain` lists."""
    body = chain.get("/api/v1/events?since=0")
    return [(r["change"], r["event"]) for r in json.loads(body)["events"]
            if r["event"]["kind"] == kind] if body else []


def start_daemon(chain, td, name, *extra):
    """The daemon capturing at the chain's sender, once /healthz answers."""
    d = subprocess.Popen(chain.in_snd(NF, "--iface", chain.vs, "--model", MODEL, *extra,
                                      "--csv", os.path.join(td, name + ".csv"), "--metrics-addr", "127.0.0.1:9898",
                                      "-q"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.time() + 30
    while time.time() < end and '"status"' not in chain.get("/healthz"):
        time.sleep(0.3)
    return d


def stop_all(procs, chain):
    for p in reversed(procs):
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    chain.__exit__(None, None, None)


def capture_drops(td, fails):
    chain = Chain(f"f{os.getpid() % 100000}", 12, 200)
    procs = []

    def events():
        return event_records(chain, "capture_degraded")

    try:
        chain.__enter__()
        procs.append(subprocess.Popen(chain.in_rcv("iperf3", "-s", "-1", "-B", chain.rcv_addr),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cfg = os.path.join(td, "drops.toml")
        with open(cfg, "w") as f:
            f.write("buffer_mib = 1\n")
        d = start_daemon(chain, td, "drops", "--config", cfg)
        procs.append(d)
        procs.append(subprocess.Popen(chain.in_snd("iperf3", "-c", chain.rcv_addr, "-t", "40"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(4)
        before = events()
        # `ip netns exec` and netforecast's hand-over to netforecast-ml both
        # exec: the PID we started is the daemon's.
        os.kill(d.pid, signal.SIGSTOP)
        time.sleep(3)
        os.kill(d.pid, signal.SIGCONT)
        stopped_at = time.time()
        started = ended = None
        while time.time() < stopped_at + 25 and not ended:
            ev = events()
            started = started or next((e for c, e in ev if c == "started"), None)
            ended = next((e for c, e in ev if c == "ended"), None)
            time.sleep(0.5)
        metrics = chain.get("/metrics")
        drops = next((float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("netforecast_kernel_drops ")), 0)
        print(f"faults: capture drops: {drops:.0f} kernel drops after a 3 s stop; capture_degraded "
              f"{'started with ' + str(started['signals']['capture_lost']) + ' lost' if started else 'never started'}"
              f"{', ended after %.1f s' % ((ended['end_ns'] - ended['start_ns']) / 1e9) if ended else ''}")
        if before:
            fails.append(f"capture drops: capture_degraded before any loss: {before}")
        if drops <= 0 or not started or started["signals"]["capture_lost"] <= 0:
            fails.append(f"capture drops: {drops} kernel drops, event {started}")
        if not ended:
            fails.append("capture drops: the capture_degraded event did not end within 25 s of the last loss")
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
    except Exception as e:  # noqa: BLE001
        fails.append(f"capture drops: {type(e).__name__}: {e}")
    finally:
        stop_all(procs, chain)


SLOW_READER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5301)); s.listen(1); s.settimeout(30)
c, _ = s.accept()
time.sleep(float(sys.argv[2]))          # not reading: the window closes
c.settimeout(5)
end = time.time() + 4
while time.time() < end:
    try:
        if not c.recv(1 << 20):
            break
    except socket.timeout:
        break
"""

WRITER = r"""
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5301), timeout=30)
c.settimeout(1)
end = time.time() + float(sys.argv[2]); buf = b"x" * 65536
while time.time() < end:
    try:
        c.send(buf)
    except socket.timeout:
        pass
    except OSError:
        break
"""


def stalls(td, fails):
    chain = Chain(f"g{os.getpid() % 100000}", 14, 50)
    procs = []

    def records(kind):
        return event_records(chain, kind)

    def wait_for(kind, change, secs):
        end = time.time() + secs
        while time.time() < end:
            hit = [e for c, e in records(kind) if c == change]
            if hit:
                return hit[-1]
            time.sleep(0.3)
        return None

    try:
        chain.__enter__()
        d = start_daemon(chain, td, "stall")
        procs.append(d)
        # The path: the router's link to the receiver goes down for 5 s.
        procs.append(subprocess.Popen(chain.in_rcv("iperf3", "-s", "-1", "-B", chain.rcv_addr),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        procs.append(subprocess.Popen(chain.in_snd("iperf3", "-c", chain.rcv_addr, "-t", "14"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(4)
        sh("ip", "-n", chain.rtr, "link", "set", chain.vmr, "down")
        down = time.time()
        started = wait_for("link_stall", "started", 8)
        time.sleep(max(0.0, 5 - (time.time() - down)))
        sh("ip", "-n", chain.rtr, "link", "set", chain.vmr, "up")
        ended = wait_for("link_stall", "ended", 15)
        print(f"faults: path down 5 s: link_stall "
              f"{'started %.1f s after, %s, %d segments unacknowledged' % (started['start_ns'] / 1e9 - down, started['severity'], started['signals']['unacked_segments']) if started else 'never started'}"
              f"{', ended after %.1f s' % ((ended['end_ns'] - ended['start_ns']) / 1e9) if ended else ', never ended'}")
        if not started or started["severity"] != "critical" or not ended:
            fails.append(f"path stall: started {started}, ended {ended}")
        if records("zero_window"):
            fails.append(f"path stall reported as a zero window: {records('zero_window')}")
        time.sleep(6)
        # The receiver: stops reading for 8 s.
        procs.append(subprocess.Popen(chain.in_rcv("python3", "-c", SLOW_READER, chain.rcv_addr, "8"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        stalls_before = len(records("link_stall"))
        procs.append(subprocess.Popen(chain.in_snd("python3", "-c", WRITER, chain.rcv_addr, "14"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        zw = wait_for("zero_window", "started", 10)
        zw_end = wait_for("zero_window", "ended", 15)
        print(f"faults: receiver stops reading 8 s: zero_window "
              f"{'started with %d zero-window advertisements in the span' % zw['signals']['zero_window_segments'] if zw else 'never started'}"
              f"{', ended after %.1f s' % ((zw_end['end_ns'] - zw_end['start_ns']) / 1e9) if zw_end else ', never ended'}")
        if not zw or not zw_end:
            fails.append(f"zero window: started {zw}, ended {zw_end}")
        if len(records("link_stall")) != stalls_before:
            fails.append("a receiver's zero window was reported as a link stall")
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
    except Exception as e:  # noqa: BLE001
        fails.append(f"stalls: {type(e).__name__}: {e}")
    finally:
        stop_all(procs, chain)


if __name__ == "__main__":
    sys.exit(main())
