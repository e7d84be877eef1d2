#!/usr/bin/env bash
# Offline checks of the Grafana files (no Grafana server exists in any registry):
#  1. every dashboard in deploy/grafana/dashboards type-checks as a `Dashboard` of
#     @grafana/schema with TypeScript --strict (the JSON is pasted into a typed
#     object literal, so literal types and excess properties are checked);
#  2. the provisioning YAML and docker-compose.yml parse, the dashboard provider
#     path is where compose mounts grafana/dashboards, and every panel and target
#     uses the provisioned datasource uid;
#  3. the alert rules (provisioning/alerting): required keys, unique uids,
#     durations, the condition and every expression naming an earlier query,
#     queries on the provisioned datasource reading netforecast's measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { apt-get install -y -qq nodejs npm >/dev/null; }
work=target/grafana-check
mkdir -p "$work"
cp scripts/grafana-check/package.json "$work/"
# Three tries: a registry hiccup would otherwise fail the check with nothing said.
for try in 1 2 3; do
  [ -d "$work/node_modules/@grafana/schema" ] && [ -d "$work/node_modules/typescript" ] && break
  (cd "$work" && npm install --silent --no-audit --no-fund >npm-install.log 2>&1) && break
  echo "check-grafana: npm install failed (try $try of 3): $(tail -n 1 "$work/npm-install.log")" >&2
  sleep $((try * 5))
done
fails=0
for d in deploy/grafana/dashboards/*.json; do
  name=$(basename "$d" .json | tr -c 'a-zA-Z0-9\n' '_')
  {
    echo "import type { Dashboard, AnnotationQuery } from '@grafana/schema';"
    echo "// The schema types an annotation's target as the built-in Grafana datasource's (its own TODO:"
    echo "// 'this should just be a normal query target'); an InfluxDB annotation's target is a query,"
    echo "// typed here like a panel's target. Everything else is checked as the schema says."
    echo "type Annotation = Omit<AnnotationQuery, 'target'> & { target?: Record<string, unknown> & { refId: string } };"
    echo "type Dash = Omit<Dashboard, 'annotations'> & { annotations?: { list?: Annotation[] } };"
    echo "// A dashboard as JSON: string enums of the schema appear as their string values."
    echo 'type Json<T> = T extends string ? `${T}` : T extends (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;'
    printf 'export const %s: Json<Dash> = ' "$name"; cat "$d"; echo ';'
  } > "$work/$name.ts"
  if (cd "$work" && npx --no-install tsc --noEmit --strict --skipLibCheck false --moduleResolution bundler --module esnext --target es2022 "$name.ts"); then
    echo "check-grafana: $d type-checks against @grafana/schema $(node -p "require('./$work/node_modules/@grafana/schema/package.json').version")"
  else
    echo "check-grafana: FAIL $d does not type-check" >&2; fails=$((fails + 1))
  fi
done
python3 - <<'PY' || fails=$((fails + 1))
import glob, json, sys, yaml
bad = []
comp = yaml.safe_load(open("deploy/docker-compose.yml"))
mounts = {v.split(":")[1]: v.split(":")[0] for v in comp["services"]["grafana"]["volumes"] if v.startswith("./")}
ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources/netforecast.yaml"))
assert ds["apiVersion"] == 1
uids = {d["uid"] for d in ds["datasources"]}
for d in ds["datasources"]:
    for k in ("name", "type", "uid", "url", "access"):
        if k not in d: bad.append(f"datasource {d.get('name')}: no {k}")
    if "token" in json.dumps(d.get("jsonData", {})): bad.append("a token in jsonData (must be secureJsonData)")
    if d["type"] == "influxdb" and d.get("secureJsonData", {}).get("token", "").strip("${}") not in ("INFLUX_TOKEN",): bad.append("token must come from ${INFLUX_TOKEN}")
prov = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/netforecast.yaml"))
for p in prov["providers"]:
    path = p["options"]["path"]
    if mounts.get(path) != "./grafana/dashboards": bad.append(f"provider path {path} is not where compose mounts ./grafana/dashboards")
if mounts.get("/etc/grafana/provisioning") != "./grafana/provisioning": bad.append("compose does not mount ./grafana/provisioning")
for f in glob.glob("deploy/grafana/dashboards/*.json"):
    dash = json.load(open(f))
    for p in dash["panels"]:
        if p["datasource"]["uid"] not in uids: bad.append(f"{f} panel {p['title']}: unknown datasource")
        for t in p.get("targets", []):
            if t["datasource"]["uid"] not in uids: bad.append(f"{f} panel {p['title']}: target with unknown datasource")
            if "traffic_prediction" not in t.get("query", t.get("expr", "")): bad.append(f"{f} panel {p['title']}: query does not read traffic_prediction")
            if t["datasource"]["type"] == "prometheus" and "expr" not in t: bad.append(f"{f} panel {p['title']}: a PromQL target without expr")
            if t["datasource"]["type"] == "influxdb" and "keep(" in t.get("query", "") and '"host"' not in t["query"].split("keep(")[1]:
                bad.append(f"{f} panel {p['title']}: keep() drops host: several hosts would draw as one name")
# Alert rules (unified alerting file provisioning): structure and references.
import re
dur = re.compile(r"^(0|\d+(ms|s|m|h|d))+$")
rules_seen = 0
for f in glob.glob("deploy/grafana/provisioning/alerting/*.yaml"):
    doc = yaml.safe_load(open(f))
    if doc.get("apiVersion") != 1: bad.append(f"{f}: apiVersion must be 1")
    uids_seen = set()
    for g in doc.get("groups", []):
        for k in ("orgId", "name", "folder", "interval", "rules"):
            if k not in g: bad.append(f"{f} group {g.get('name')}: no {k}")
        if not dur.match(str(g.get("interval", ""))): bad.append(f"{f} group {g.get('name')}: interval {g.get('interval')!r}")
        for r in g.get("rules", []):
            rules_seen += 1
            t = r.get("title", "?")
            for k in ("uid", "title", "condition", "data", "for", "noDataState", "execErrState"):
                if k not in r: bad.append(f"{f} rule {t}: no {k}")
            uid = r.get("uid", "")
            if not re.match(r"^[a-zA-Z0-9_-]{1,40}$", uid) or uid in uids_seen: bad.append(f"{f} rule {t}: bad or repeated uid {uid!r}")
            uids_seen.add(uid)
            if r.get("noDataState") not in ("OK", "NoData", "Alerting", "KeepLast"): bad.append(f"{f} rule {t}: noDataState")
            if r.get("execErrState") not in ("OK", "Error", "Alerting", "KeepLast"): bad.append(f"{f} rule {t}: execErrState")
            if not dur.match(str(r.get("for", ""))): bad.append(f"{f} rule {t}: for {r.get('for')!r}")
            refs = [d.get("refId") for d in r.get("data", [])]
            if r.get("condition") not in refs: bad.append(f"{f} rule {t}: condition {r.get('condition')} is no query")
            for d in r.get("data", []):
                m = d.get("model", {})
                if m.get("refId") != d.get("refId"): bad.append(f"{f} rule {t}: model refId differs from {d.get('refId')}")
                if d.get("datasourceUid") == "__expr__":
                    if m.get("type") not in ("reduce", "threshold", "math", "classic_conditions", "resample"): bad.append(f"{f} rule {t}: expression type {m.get('type')}")
                    if m.get("expression") not in refs or refs.index(m.get("expression")) >= refs.index(d.get("refId")): bad.append(f"{f} rule {t}: {d.get('refId')} reads {m.get('expression')}, not an earlier query")
                elif d.get("datasourceUid") not in uids: bad.append(f"{f} rule {t}: unknown datasource {d.get('datasourceUid')}")
                elif "netforecast_events" not in m.get("query", "") and "traffic_prediction" not in m.get("query", ""): bad.append(f"{f} rule {t}: query reads no netforecast measurement")
            if not r.get("labels", {}).get("severity"): bad.append(f"{f} rule {t}: no severity label")
if rules_seen == 0: bad.append("no Grafana alert rule provisioned (deploy/grafana/provisioning/alerting)")
for svc in comp["services"].values():
    for port in svc.get("ports", []):
        if not str(port).startswith("127.0.0.1:"): bad.append(f"port {port} is not bound to localhost")
for b in bad: print("check-grafana: FAIL", b, file=sys.stderr)
print(f"check-grafana: provisioning ({rules_seen} alert rules) and compose: {'ok' if not bad else str(len(bad)) + ' problems'}")
sys.exit(1 if bad else 0)
PY
echo "grafana: $((fails == 0 ? 1 : 0)) passed, $((fails > 0 ? 1 : 0)) failed"
[ "$fails" = 0 ]
