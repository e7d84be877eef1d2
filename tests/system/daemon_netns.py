#!/usr/bin/env python3
"""The daemon against real servers, in a network namespace pair this test makes
(needs root).

Inside the sender namespace (its own loopback) the test starts VictoriaMetrics
1.79 (takes InfluxDB's /api/v2/write), influxd 1.6.7 (the 1.x /write API) and
Prometheus 2.42, then two daemons capturing live on the sender's veth while an
iperf3 transfer runs: daemon A writes to VictoriaMetrics, daemon B to influxd,
both also to a predictions CSV. VictoriaMetrics is stopped for 5 minutes mid-run
(NF_OUTAGE_S, default 300) and started again; the daemons keep forecasting every
50 ms (20 points/s each) throughout. After SIGTERM the test checks:

  * the points read back from each server equal the predictions CSV of the same
    daemon (window start, actual and forecast), and their count equals the
    daemon's count of forecasts: nothing lost, the outage included;
  * Prometheus scraped daemon A's endpoint and a query returns its counters;
  * /healthz answered ok while capturing, and 503 naming the writer during the outage;
  * the backlog drains within 30 s of the server's return, read while the daemon runs;
  * while the server is away the writer uses under 5 % of a core and the daemon's
    resident memory grows by less than 16 MB (the points wait in a bounded queue).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns_pair import NetnsPair, sh, stop_process  # noqa: E402
from chain import influxd_conf  # noqa: E402

NF = os.path.abspath(os.environ.get("NETFORECAST", "target/release/netforecast"))
OUTAGE_S = float(os.environ.get("NF_OUTAGE_S", "300"))
MODEL = os.path.abspath(os.environ.get("NETFORECAST_MODEL", "model_files"))


def ns_get(ns, url, data=None, timeout=5):
    """HTTP from inside the namespace (its loopback is not ours). The body, also of
    an error answer (a 503 from /healthz); the status is on stderr."""
    script = ("import sys,urllib.request as u, urllib.error as e\n"
              "d=sys.argv[2].encode() if len(sys.argv)>2 else None\n"
              "try:\n r=u.urlopen(u.Request(sys.argv[1],data=d),timeout=%d)\n"
              "except e.HTTPError as x:\n r=x\n"
              "sys.stderr.write(str(r.status))\nsys.stdout.write(r.read().decode())\n" % timeout)
    cmd = ["ip", "netns", "exec", ns, "python3", "-c", script, url]
    if data is not None:
        cmd.append(data)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)


def wait_http(ns, url, secs=20):
    end = time.time() + secs
    while time.time() < end:
        if ns_get(ns, url).returncode == 0:
            return True
        time.sleep(0.3)
    return False


def metric_of(ns, name, port=9898):
    text = ns_get(ns, f"http://127.0.0.1:{port}/metrics").stdout
    return next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ")), None)


def read_csv(path):
    with open(path) as f:
        return {int(r["window_start"].replace(".", "")) // 1_000_000: (float(r["actual_mbps"]), float(r["predicted_mbps"]))
                for r in csv.DictReader(f)}


def forecasts_of(summary):
    for line in summary.splitlines():
        if "forecasts" in line and "stopped after" in line:
            return int(line.split(" forecasts")[0].split()[-1]), line
    return None, summary.strip()[-300:]


def promql_dashboard(ns, start_s, end_s):
    """Every query of the PromQL dashboard, its variables at their defaults, run against
    the VictoriaMetrics the daemon wrote to: each answers, and each panel's query
    returns a series per host and interface."""
    bad = []
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "grafana", "dashboards",
                        "phase-shift-promql.json")
    dash = json.load(open(path))

    def run(expr, kind):
        # The variables' defaults: every host and interface, the interface
        # streams (not the hosts'), all of them.
        expr = (expr.replace("$host", ".*").replace("$iface", ".*")
                .replace("$stream_kind", "iface").replace("$stream", ".*"))
        url = ("http://127.0.0.1:8428/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": start_s, "end": end_s, "step": "1s"}))
        r = ns_get(ns, url, timeout=20)
        try:
            j = json.loads(r.stdout)
        except ValueError:
            return None, f"{kind} {expr}: {r.stdout[:200]} {r.stderr[:200]}"
        if j.get("status") != "success":
            return None, f"{kind} {expr}: {j}"
        return j["data"]["result"], None

    answered = 0
    for var in dash["templating"]["list"]:
        q = var["query"]["query"]  # label_values(metric, label)
        metric, label = q[len("label_values("):-1].split(", ")
        r = ns_get(ns, f"http://127.0.0.1:8428/api/v1/label/{label}/values?match[]={metric}", timeout=20)
        vals = json.loads(r.stdout or "{}").get("data", [])
        if not vals:
            bad.append(f"PromQL dashboard: variable {var['name']} has no values: {r.stdout[:200]}")
    for p in dash["panels"]:
        for t in p["targets"]:
            res, err = run(t["expr"], f"panel {p['title']}")
            if err:
                bad.append("PromQL dashboard: " + err)
                continue
            answered += 1
            if not res or not all("host" in s["metric"] and "iface" in s["metric"] for s in res):
                bad.append(f"PromQL dashboard: panel {p['title']} {t['expr']} returned {len(res)} series "
                           f"{[s['metric'] for s in res][:3]}")
    for a in dash["annotations"]["list"]:
        _, err = run(a["target"]["expr"], "annotation")
        if err:
            bad.append("PromQL dashboard: " + err)
        else:
            answered += 1
    print(f"daemon_netns: PromQL dashboard: {answered} queries answered by VictoriaMetrics, "
          f"{len(bad)} problems")
    return bad


def main():
    if os.geteuid() != 0:
        print("daemon_netns: needs root; skipped\ndaemon: 0 passed, 0 failed, 1 skipped")
        return 0
    if not os.path.exists(os.path.join(MODEL, "netforecast.pt")):
        print(f"daemon_netns: no model in {MODEL}; FAIL\ndaemon: 0 passed, 1 failed")
        return 1
    pair = NetnsPair(f"d{os.getpid()}", 2, 30)
    snd, rcv, vs = pair.snd, pair.rcv, pair.vs
    td = tempfile.mkdtemp()
    procs = {}
    failures = []

    def start(name, cmd, **kw):
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(td, name + ".log"), "w"), **kw)
        return procs[name]

    def ex(*cmd):
        return ["ip", "netns", "exec", snd, *cmd]

    try:
        pair.__enter__()

        vm_cmd = ex("victoria-metrics", "-httpListenAddr", "127.0.0.1:8428", "-storageDataPath", os.path.join(td, "vm"),
                    "-search.latencyOffset", "0s")
        start("vm", vm_cmd)
        conf = influxd_conf(os.path.join(td, "influxdb.conf"), td)
        start("influxd", ex("influxd", "-config", conf))
        prom_conf = os.path.join(td, "prometheus.yml")
        with open(prom_conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: netforecast\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:9898']\n")
        start("prometheus", ex("prometheus", f"--config.file={prom_conf}", f"--storage.tsdb.path={td}/prom",
                               "--web.listen-address=127.0.0.1:9090"))
        for name, url in (("VictoriaMetrics", "http://127.0.0.1:8428/health"), ("influxd", "http://127.0.0.1:8086/ping"),
                          ("Prometheus", "http://127.0.0.1:9090/-/ready")):
            if not wait_http(snd, url):
                raise RuntimeError(f"{name} did not start: {open(os.path.join(td, name.lower() if name != 'VictoriaMetrics' else 'vm') + '.log').read()[-500:] if False else ''}")
        ns_get(snd, "http://127.0.0.1:8086/query", data="q=CREATE DATABASE nf")

        start("iperf-s", ["ip", "netns", "exec", rcv, "iperf3", "-s", "-1", "-B", pair.rcv_addr])
        env_a = dict(os.environ, INFLUX_URL="http://127.0.0.1:8428", INFLUX_ORG="lab", INFLUX_BUCKET="nf",
                     INFLUX_TOKEN="not-a-real-token-but-secret")
        env_b = dict(os.environ, INFLUX_URL="http://127.0.0.1:8086", INFLUX_VERSION="1", INFLUX_DB="nf")
        env_a.pop("INFLUX_VERSION", None)
        csv_a, csv_b = os.path.join(td, "a.csv"), os.path.join(td, "b.csv")
        # The interface's stream only (no host or flow streams): every point and CSV row is counted
        # against the summary's forecasts (host streams: multi_iface_netns.py).
        da = subprocess.Popen(ex(NF, "--iface", vs, "--model", MODEL, "--csv", csv_a, "--metrics-addr", "127.0.0.1:9898",
                                 "--top-hosts", "0", "--top-flows", "0"),
                              env=env_a, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        db = subprocess.Popen(ex(NF, "--iface", vs, "--model", MODEL, "--csv", csv_b, "--metrics-addr", "127.0.0.1:9899",
                                 "--top-hosts", "0", "--top-flows", "0"),
                              env=env_b, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs["daemon-a"], procs["daemon-b"] = da, db
        time.sleep(2)
        h = ns_get(snd, "http://127.0.0.1:9898/healthz")
        if h.stderr.strip() != "200" or json.loads(h.stdout or "{}").get("status") != "ok":
            failures.append(f"/healthz did not answer ok while capturing: {h.stderr} {h.stdout}")
        # Paced at 20 Mbit/s so a 5-minute run stays light on a 2-core machine.
        client = subprocess.Popen(["ip", "netns", "exec", snd, "iperf3", "-c", pair.rcv_addr, "-b", "20M",
                                   "-t", str(int(OUTAGE_S + 10))],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs["iperf-c"] = client
        time.sleep(4)
        # Outage: VictoriaMetrics away for OUTAGE_S seconds.
        procs["vm"].send_signal(signal.SIGTERM)
        procs["vm"].wait(timeout=20)
        outage_from = time.time()
        def writer_cpu_s(pid):
            """CPU seconds of the daemon's writer thread so far."""
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    st = f.read()
                if st[st.index("(") + 1:st.rindex(")")] == "writer":
                    fields = st[st.rindex(")") + 2:].split()
                    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            return None
        def rss_kb(pid):
            with open(f"/proc/{pid}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        time.sleep(2)
        cpu0, t0 = writer_cpu_s(da.pid), time.time()
        rss0 = rss_kb(da.pid)
        time.sleep(13)
        cpu1, t1 = writer_cpu_s(da.pid), time.time()
        if cpu0 is None or cpu1 is None:
            failures.append("no writer thread found")
        else:
            share = (cpu1 - cpu0) / (t1 - t0)
            print(f"daemon_netns: writer thread during the outage: {100 * share:.1f} % of a core")
            if share > 0.05:
                failures.append(f"the writer used {100 * share:.1f} % of a core while the server was away")
        # While writes fail, /healthz says so and names the writer.
        h = ns_get(snd, "http://127.0.0.1:9898/healthz")
        hj = json.loads(h.stdout or "{}")
        if h.stderr.strip() != "503" or hj.get("failing") != ["writer"]:
            failures.append(f"/healthz during the outage: {h.stderr} {h.stdout}")
        # The rest of the outage; memory is sampled while the queue grows.
        rss_max = rss0
        while time.time() - outage_from < OUTAGE_S:
            time.sleep(5)
            rss_max = max(rss_max, rss_kb(da.pid))
        q_before = metric_of(snd, "netforecast_writer_queue_points")
        print(f"daemon_netns: after {time.time() - outage_from:.0f} s away: {q_before:.0f} points queued, "
              f"RSS {rss0 / 1024:.1f} -> {rss_max / 1024:.1f} MB")
        if rss_max - rss0 > 16 * 1024:
            failures.append(f"resident memory grew by {(rss_max - rss0) / 1024:.1f} MB during the outage")
        if OUTAGE_S >= 60 and (q_before or 0) < 20 * (OUTAGE_S - 20):
            failures.append(f"only {q_before} points queued after {OUTAGE_S:.0f} s: were forecasts made at 20/s?")
        start("vm", vm_cmd)
        wait_http(snd, "http://127.0.0.1:8428/health")
        back = time.time()
        print(f"daemon_netns: VictoriaMetrics was down for {back - outage_from:.1f} s")
        # Before any signal: the backlog drains within 30 s of the server's return
        # (the writer once stalled for good with 200+ points queued).
        def metric(name):
            return metric_of(snd, name)
        drained = None
        while time.time() - back < 30:
            q = metric("netforecast_writer_queue_points")
            if q is not None and q < 50:
                drained = time.time() - back
                break
            time.sleep(0.5)
        if drained is None:
            failures.append(f"the backlog did not drain within 30 s of the server's return "
                            f"(queue {metric('netforecast_writer_queue_points')})")
        else:
            print(f"daemon_netns: backlog drained {drained:.1f} s after the server came back, while running")
        client.wait(timeout=OUTAGE_S + 120)
        time.sleep(3)
        prom = ns_get(snd, "http://127.0.0.1:9090/api/v1/query?query=netforecast_forecasts_total").stdout
        prom_frames = ns_get(snd, "http://127.0.0.1:9090/api/v1/query?query=netforecast_packets_counted_total").stdout
        for d in (da, db):
            d.send_signal(signal.SIGTERM)
        out_a = da.communicate(timeout=30)[1]
        out_b = db.communicate(timeout=30)[1]
        if da.returncode != 0 or db.returncode != 0:
            failures.append(f"daemon exit codes {da.returncode}, {db.returncode}: {out_a[-300:]} {out_b[-300:]}")
        if "not-a-real-token" in out_a:
            failures.append("the token appeared in the daemon's output")
        fa, line_a = forecasts_of(out_a)
        fb, line_b = forecasts_of(out_b)
        print(f"daemon_netns: A {line_a}\ndaemon_netns: B {line_b}")

        # VictoriaMetrics: every point (actual_mbps is in all of them) and the forecasts.
        ns_get(snd, "http://127.0.0.1:8428/internal/force_flush")
        time.sleep(1)
        exp = ns_get(snd, "http://127.0.0.1:8428/api/v1/export?match[]={__name__=~\"traffic_prediction_(actual|predicted)_mbps\"}",
                     timeout=20).stdout
        series = {}
        for line in exp.splitlines():
            j = json.loads(line)
            series[j["metric"]["__name__"]] = dict(zip(j["timestamps"], j["values"]))
        actual = series.get("traffic_prediction_actual_mbps", {})
        pred = series.get("traffic_prediction_predicted_mbps", {})
        rows_a = read_csv(csv_a)
        if len(actual) != fa:
            failures.append(f"VictoriaMetrics holds {len(actual)} points, daemon A made {fa} forecasts")
        # VictoriaMetrics keeps about 12 significant digits of a float.
        def near(a, b):
            return a is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)
        mism = [t for t, (act, p) in rows_a.items() if not near(pred.get(t), p) or not near(actual.get(t), act)]
        if len(pred) != len(rows_a) or mism:
            failures.append(f"VictoriaMetrics predictions {len(pred)} vs CSV {len(rows_a)}, {len(mism)} differ")
        print(f"daemon_netns: VictoriaMetrics: {len(actual)} points, {len(pred)} forecasts at their target windows; "
              f"CSV {len(rows_a)} rows; daemon forecasts {fa}")
        failures.extend(promql_dashboard(snd, min(actual) // 1000 if actual else 0, max(actual) // 1000 + 1 if actual else 0))

        # influxd 1.6.7 through /write?db=.
        q = ns_get(snd, "http://127.0.0.1:8086/query?db=nf&epoch=ms&q=" + urllib.request.quote(
            "SELECT actual_mbps, predicted_mbps FROM traffic_prediction"), timeout=20).stdout
        vals = json.loads(q)["results"][0].get("series", [{}])[0].get("values", [])
        rows_b = read_csv(csv_b)
        got_b = {v[0]: (v[1], v[2]) for v in vals}
        with_pred = {t: v for t, v in got_b.items() if v[1] is not None}
        mism_b = [t for t, v in rows_b.items() if with_pred.get(t) != v]
        if len(got_b) != fb or len(with_pred) != len(rows_b) or mism_b:
            failures.append(f"influxd holds {len(got_b)} points ({len(with_pred)} with a forecast), daemon B made {fb} "
                            f"forecasts and wrote {len(rows_b)} CSV rows; {len(mism_b)} differ")
        print(f"daemon_netns: influxd 1.6.7: {len(got_b)} points, {len(with_pred)} forecasts; CSV {len(rows_b)} rows; "
              f"daemon forecasts {fb}")

        # Prometheus scraped the endpoint.
        try:
            r1 = json.loads(prom)["data"]["result"]
            r2 = json.loads(prom_frames)["data"]["result"]
            v1, v2 = float(r1[0]["value"][1]), float(r2[0]["value"][1])
            print(f"daemon_netns: Prometheus: netforecast_forecasts_total {v1:.0f}, netforecast_packets_counted_total {v2:.0f}")
            if v1 <= 0 or v2 <= 0:
                failures.append("Prometheus returned zero counters")
        except (ValueError, KeyError, IndexError):
            failures.append(f"Prometheus query failed: {prom[:300]}")
    except Exception as e:  # noqa: BLE001 - report any setup failure as a test failure
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        for p in procs.values():
            stop_process(p)
        pair.__exit__(None, None, None)
    for f in failures:
        print(f"daemon_netns: FAIL {f}")
    print(f"daemon: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
