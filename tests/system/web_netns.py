#!/usr/bin/env python3
"""The live page in a real browser (needs root): the daemon captures at the
sender of a three-namespace chain (sender, router with a 40 Mbit/s tbf
bottleneck, receiver) while iperf3 sends; Debian's headless chromium, driven over
the DevTools protocol by puppeteer-core (scripts/web-check/page.js) in the
sender's namespace, opens http://127.0.0.1:9898/ as a user would. The test checks,
while everything runs:

  * the charts receive live updates: at least 200 windows, and more 3 s later,
    with redraws, and no error in the page's console;
  * in the 20 s of steady bulk traffic before that, no congestion_ahead or
    capacity_drop (GET /api/v1/events);
  * after the test cuts the bottleneck to 4 Mbit/s, a capacity_drop row appears
    in the page's events table (and in GET /api/v1/events), and Alertmanager
    (Debian's, started in the namespace; the daemon's alertmanager_url) has it
    firing, and influxd 1.6.7 (the daemon's InfluxDB) has its start as a point of
    netforecast_events; once the event ends, Alertmanager resolves it;
  * the page's screenshot is saved (target/web-check/page.png), and on a phone's
    screen (page-phone.png) nothing is wider than the screen;
  * `replay --html` writes one file that draws its charts, events and tables
    in chromium with every network request refused (target/web-check/report.png).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chain import Chain, influxd_conf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NF = os.path.abspath(os.environ.get("NETFORECAST", os.path.join(ROOT, "target/release/netforecast")))
MODEL = os.path.abspath(os.environ.get("NETFORECAST_MODEL", os.path.join(ROOT, "model_files")))
WORK = os.path.join(ROOT, "target", "web-check")
ALERTMANAGER = os.environ.get("NF_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")


def setup_driver():
    """puppeteer-core from npm (pinned in scripts/web-check/package.json) beside page.js."""
    os.makedirs(WORK, exist_ok=True)
    for f in ("package.json", "page.js"):
        shutil.copy(os.path.join(ROOT, "scripts", "web-check", f), WORK)
    if not os.path.isdir(os.path.join(WORK, "node_modules", "puppeteer-core")):
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=WORK, check=True,
                       stdout=subprocess.DEVNULL)


def ns_get(chain, path, port=9898):
    return chain.get(path, port)


def ns_post(chain, port, path, data):
    """POST form data inside the sender's namespace; the body, or None when nothing answers."""
    script = ("import sys,urllib.request as u, urllib.error as e\n"
              "try:\n r=u.urlopen(u.Request(sys.argv[1],data=sys.argv[2].encode()),timeout=5)\n"
              "except e.HTTPError as x:\n r=x\n"
              "sys.stdout.write(r.read().decode())\n")
    r = subprocess.run(chain.in_snd("python3", "-c", script, f"http://127.0.0.1:{port}{path}", data),
                       capture_output=True, text=True, timeout=15)
    return r.stdout if r.returncode == 0 else None


def main():
    if os.geteuid() != 0:
        print("web_netns: needs root; skipped\nweb: 0 passed, 0 failed, 1 skipped")
        return 0
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        print(f"web_netns: {chromium} is missing (scripts/setup.sh --test installs it); FAIL\nweb: 0 passed, 1 failed")
        return 1
    setup_driver()
    td = tempfile.mkdtemp()
    procs = []
    failures = []
    checks = 0
    shot = os.path.join(WORK, "page.png")
    if os.path.exists(shot):
        os.remove(shot)

    def expect(ok, what):
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(what)
        print(("ok   " if ok else "FAIL ") + what.split("\n")[0][:300])

    chain = Chain(f"w{os.getpid() % 100000}", 8, 40)
    try:
        chain.__enter__()
        procs.append(subprocess.Popen(chain.in_rcv("iperf3", "-s", "-1", "-B", chain.rcv_addr),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Alertmanager in the sender's namespace; the daemon posts its events there.
        with open(os.path.join(td, "am.yml"), "w") as f:
            f.write("route:\n  receiver: none\n  group_wait: 0s\nreceivers:\n  - name: none\n")
        procs.append(subprocess.Popen(chain.in_snd(ALERTMANAGER, f"--config.file={td}/am.yml",
                                                   f"--storage.path={td}/am", "--web.listen-address=127.0.0.1:9093",
                                                   "--cluster.listen-address="),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with open(os.path.join(td, "nf.toml"), "w") as f:
            f.write('alertmanager_url = "http://127.0.0.1:9093"\n')
        # influxd 1.6.7 too: events become points of netforecast_events.
        influxd_conf(os.path.join(td, "influxdb.conf"), td)
        procs.append(subprocess.Popen(chain.in_snd("influxd", "-config", os.path.join(td, "influxdb.conf")),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 20
        while time.time() < deadline and ns_post(chain, 8086, "/query", "q=CREATE DATABASE nf") is None:
            time.sleep(0.3)
        daemon = subprocess.Popen(chain.in_snd(NF, "--iface", chain.vs, "--model", MODEL, "--csv",
                                               os.path.join(td, "p.csv"), "--metrics-addr", "127.0.0.1:9898",
                                               "--config", os.path.join(td, "nf.toml")),
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(td, "daemon.log"), "w"),
                                  env=dict(os.environ, INFLUX_URL="http://127.0.0.1:8086", INFLUX_VERSION="1",
                                           INFLUX_DB="nf"))
        procs.append(daemon)
        deadline = time.time() + 30
        while time.time() < deadline and '"status"' not in ns_get(chain, "/healthz"):
            time.sleep(0.3)
        client = subprocess.Popen(chain.in_snd("iperf3", "-c", chain.rcv_addr, "-t", "90"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(client)
        started = time.time()
        page = subprocess.Popen(chain.in_snd("node", os.path.join(WORK, "page.js"), "check", "http://127.0.0.1:9898/",
                                             shot, "200"),
                                cwd=WORK, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=open(os.path.join(td, "page.log"), "w"), text=True,
                                env=dict(os.environ, CHROMIUM=chromium))
        procs.append(page)

        def stage():
            line = page.stdout.readline()
            if not line:
                raise RuntimeError("the page driver ended: " + open(os.path.join(td, "page.log")).read()[-800:])
            return json.loads(line)

        live = stage()
        if live.get("stage") == "error":
            raise RuntimeError(live["error"])
        first, later = live["first"], live["later"]
        expect(first["windows"] >= 200 and first["updates"] >= 5,
               f"the page received {first['windows']} windows in {first['updates']} live updates")
        expect(later["windows"] > first["windows"] and later["redraws"] > first["redraws"],
               f"and kept receiving: {later['windows']} windows, {later['redraws']} redraws 3 s later")
        expect(not live["errors"], f"no error in the page: {live['errors']}")
        # A minute of windows sets the band and the RTT floor; then the link drops.
        time.sleep(max(0.0, 20 - (time.time() - started)))
        # 20 s of one bulk transfer through a steady 40 Mbit/s bottleneck: a
        # healthy link, where an operator must not be alerted.
        api = json.loads(ns_get(chain, "/api/v1/events?since=0") or "{}")
        steady = [(r["change"], r["event"]["kind"], r["event"]["start_ns"]) for r in api.get("events", [])
                  if r["event"]["kind"] in ("congestion_ahead", "capacity_drop")]
        expect("events" in api and not steady,
               f"no congestion_ahead or capacity_drop in 20 s of steady bulk traffic: {steady}")
        # Window starts are on the epoch grid: the cut falls in the window
        # that starts at or before it.
        cut = time.time()
        chain.set_rate(4)
        dropped_at = time.time()
        page.stdin.write(f"expect capacity_drop {cut - 0.05:.3f}\n")
        page.stdin.flush()
        ev = stage()
        expect(ev.get("found") is not None,
               f"a capacity_drop that started after the cut in the page's events table {ev.get('waited_s')} s after it: "
               f"{ev.get('found')}")
        api = json.loads(ns_get(chain, "/api/v1/events?since=0") or "{}")
        kinds = [r["event"]["kind"] for r in api.get("events", [])]
        expect("capacity_drop" in kinds, f"GET /api/v1/events lists it too: {kinds}")
        def am_drops():
            body = ns_get(chain, "/api/v2/alerts", port=9093) or "[]"
            return [a for a in json.loads(body) if a.get("labels", {}).get("kind") == "capacity_drop"
                    and a.get("status", {}).get("state") == "active"]

        def wait(cond, secs):
            end = time.time() + secs
            while time.time() < end:
                v = cond()
                if v:
                    return v
                time.sleep(0.2)
            return cond()

        firing = wait(lambda: [a for a in am_drops() if a["startsAt"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut - 1))], 15)
        expect(bool(firing), f"Alertmanager has the capacity drop firing: {[a.get('labels') for a in firing]}")
        def influx_drops():
            body = ns_post(chain, 8086, "/query", "db=nf&q=SELECT * FROM netforecast_events WHERE kind='capacity_drop'"
                           " AND change='started'") or "{}"
            res = json.loads(body).get("results", [{}])[0].get("series", [])
            if not res:
                return []
            cols = res[0]["columns"]
            return [dict(zip(cols, v)) for v in res[0]["values"]]

        def whole(r):
            # influxd 1.x stores each field apart, so a query racing the write
            # can see a point with only some of its fields yet: wait for whole ones.
            return (r.get("severity") in ("warning", "critical") and "capacity drop" in str(r.get("text"))
                    and all(r.get(k) is not None for k in ("active", "bif_bytes", "throughput_mbps", "forecast_mbps")))

        stored = wait(lambda: [r for r in influx_drops() if whole(r)], 15)
        if not stored:
            stored = influx_drops()
        expect(bool(stored) and whole(stored[-1]),
               f"influxd has it in netforecast_events, all its fields: {stored[-1:] if stored else stored}")
        phone = stage()
        expect(phone.get("fits") is True, "on a 390-pixel phone screen nothing is wider than the screen")
        done = stage()
        expect(os.path.getsize(shot) > 10000 if os.path.exists(shot) else False, f"screenshot saved: {shot}")
        expect(not done.get("errors"), f"no error in the page: {done.get('errors')}")
        pss = done.get("chromium_pss_mib", {})
        print(f"web_netns: page JS heap {done.get('js_heap_mib', 0):.1f} MiB, chromium PSS {pss.get('total', 0):.0f} MiB "
              f"(largest process {pss.get('largest', 0):.0f} MiB), {done['nf']['windows']} windows, "
              f"{done['nf']['events']} event records, cut-to-row {time.time() - dropped_at:.1f} s or less")
        page.wait(timeout=30)
        # The link comes back: the event ends and Alertmanager resolves it.
        chain.set_rate(40)
        back = time.time()
        resolved = wait(lambda: not am_drops(), 60)
        expect(resolved, f"and resolved when the event ended (seen {time.time() - back:.1f} s after the bottleneck came back)")
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=30)
        expect(rc == 0, f"the daemon stopped cleanly (exit {rc})")

        # The replay report: one file, opened with every network request refused.
        report = os.path.join(WORK, "report.html")
        sample = os.path.join(ROOT, "tests", "data", "lab-cellular-s3.pcap.gz")
        r = subprocess.run([NF, "replay", sample, "--model", MODEL, "--html", report, "-q"],
                           capture_output=True, text=True, timeout=120)
        expect(r.returncode == 0 and os.path.exists(report), f"replay --html wrote {report} {r.stderr.strip()}")
        r = subprocess.run(["node", os.path.join(WORK, "page.js"), "file", report, os.path.join(WORK, "report.png")],
                           cwd=WORK, capture_output=True, text=True, timeout=120, env=dict(os.environ, CHROMIUM=chromium))
        f = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {"stage": r.stderr[-500:]}
        ok = (f.get("stage") == "done" and f["nf"]["windows"] > 400 and f["canvases"] >= 3 and f["event_rows"] > 0
              and f["report_chars"] > 200 and not f["blocked"] and not f["errors"])
        expect(ok, f"the report opens from the file with no network: {f}")
    except Exception as e:  # noqa: BLE001
        failures.append(f"{type(e).__name__}: {e}")
        print(f"FAIL {type(e).__name__}: {e}")
        log = os.path.join(td, "daemon.log")
        if os.path.exists(log):
            print(open(log).read()[-1500:])
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        chain.__exit__(None, None, None)
        shutil.rmtree(td, ignore_errors=True)
    failed = len(failures)
    print(f"web: {max(0, checks - failed)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    # A TERM (timeout, CI ending) unwinds through the cleanup like an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
