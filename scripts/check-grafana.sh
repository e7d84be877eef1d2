#!/usr/bin/env bash
# Offline checks of the Grafana files (no Grafana server exists in any registry):
#  1. every dashboard in deploy/grafana/dashboards type-checks as a `Dashboard` of
#     @grafana/schema with TypeScript --strict (the JSON is pasted into a typed
#     object literal, so literal types and excess properties are checked);
#  2. the provisioning YAML and docker-compose.yml parse, the dashboard provider
#     path is where compose mounts grafana/dashboards, and every panel and target
#     uses the provisioned datasource uid.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { apt-get install -y -qq nodejs npm >/dev/null; }
work=target/grafana-check
mkdir -p "$work"
cp scripts/grafana-check/package.json "$work/"
( cd "$work" && [ -d node_modules/@grafana/schema ] || npm install --silent --no-audit --no-fund >/dev/null 2>&1 )
fails=0
for d in deploy/grafana/dashboards/*.json; do
  name=$(basename "$d" .json | tr -c 'a-zA-Z0-9\n' '_')
  {
    echo "import type { Dashboard } from '@grafana/schema';"
    echo "// A dashboard as JSON: string enums of the schema appear as their string values."
    echo 'type Json<T> = T extends string ? `${T}` : T extends (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;'
    printf 'export const %s: Json<Dashboard> = ' "$name"; cat "$d"; echo ';'
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
    if d.get("secureJsonData", {}).get("token", "").strip("${}") not in ("INFLUX_TOKEN",): bad.append("token must come from ${INFLUX_TOKEN}")
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
            if "traffic_prediction" not in t.get("query", ""): bad.append(f"{f} panel {p['title']}: query does not read traffic_prediction")
for svc in comp["services"].values():
    for port in svc.get("ports", []):
        if not str(port).startswith("127.0.0.1:"): bad.append(f"port {port} is not bound to localhost")
for b in bad: print("check-grafana: FAIL", b, file=sys.stderr)
print(f"check-grafana: provisioning and compose: {'ok' if not bad else str(len(bad)) + ' problems'}")
sys.exit(1 if bad else 0)
PY
echo "grafana: $((fails == 0 ? 1 : 0)) passed, $((fails > 0 ? 1 : 0)) failed"
[ "$fails" = 0 ]
