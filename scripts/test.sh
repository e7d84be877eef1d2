#!/usr/bin/env bash
# Sets up and runs every test: formatting and clippy first, then unit, property,
# pipeline and CLI tests (cargo), the tshark
# oracle over crafted edge cases, the committed capture and ../shared's public
# captures, the Grafana dashboard check, Python's torch.jit.load of the shipped
# model, and (as root) the live, lab, daemon, fault, page, several-interface,
# Kafka and fleet tests in network namespaces.
# Ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
export PYTHONUNBUFFERED=1
passed=0 failed=0 failures=()
# Each step's output (stdout and stderr, in order) also goes to target/test-logs/N.log;
# the end repeats the tail of every failed step's log, so a CI log cut to its last
# lines still says what failed and why.
logs=target/test-logs
rm -rf "$logs" && mkdir -p "$logs"
step() { # name, command...
  local name=$1; shift
  local start=$SECONDS log="$logs/$((passed + failed + 1)).log"
  echo "=== $name" >&2
  "$@" 2>&1 | tee "$log" >&2
  if [ "${PIPESTATUS[0]}" = 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)) failures+=("$name|$log")
    echo "=== FAILED: $name" >&2
  fi
  echo "=== $((SECONDS - start)) s: $name" >&2
}
# Fast checks first.
step "cargo fmt --check" cargo fmt --all -- --check
step "clippy, warnings denied" cargo clippy --release --workspace --all-targets -q -- -D warnings
# The engine and the service build and pass with no libtorch: a libtorch path
# that does not exist would fail any build that links it.
step "engine and service tests without libtorch" \
  env LIBTORCH=/nonexistent/libtorch cargo test --release -q -p netforecast-engine -p netforecast-service
cargo build --release --workspace --bins -q || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }
step "cargo test" cargo test --release --workspace -q
crafted=target/crafted
step "craft edge-case captures" target/release/craft "$crafted"
oracle_files=("$crafted"/*.pcap tests/data/*.pcap tests/data/*.pcap.gz)
if [ -d ../shared/fixtures/public ]; then
  for f in ../shared/fixtures/public/*; do
    case "$f" in *.md|*cut-short*) ;; *) oracle_files+=("$f") ;; esac
  done
else
  echo "test: ../shared/fixtures/public not found; oracle runs on the project's own captures only" >&2
fi
if [ "$(id -u)" = 0 ]; then
  # Fresh real transfers: four bbr flows through a changing bottleneck, and a
  # flow whose receiving application stops reading (zero windows, probes).
  rm -f target/real-bbr4.pcap target/real-stalls.pcap
  step "real transfers in namespaces for the oracle: four bbr flows; a receiver that stalls" sh -c '
    scripts/lab/netns-transfer.sh --out target/real-bbr4.pcap --seconds 3 --parallel 4 --cc bbr \
      --rates "60:1,15:1,100:1" &&
    scripts/lab/netns-transfer.sh --out target/real-stalls.pcap --seconds 6 --stalls 3 --cc cubic \
      --rates "30:6" && grep -q stop target/real-stalls.pcap.stalls'
  oracle_files+=(target/real-bbr4.pcap target/real-stalls.pcap)
fi
step "tshark oracle" python3 scripts/oracle.py "${oracle_files[@]}"
step "grafana dashboard and provisioning" scripts/check-grafana.sh
step "prometheus alerting rules: promtool check and unit tests" \
  sh -c 'cd deploy/prometheus && promtool check rules netforecast-alerts.yml && promtool test rules netforecast-alerts.test.yml'
step "python: torch.jit.load runs the shipped model as netforecast does" scripts/check-python-load.sh
if [ "$(id -u)" = 0 ]; then
  step "live capture in network namespaces" python3 tests/system/live_netns.py
  step "lab: delay line imposes its delay and loss" tests/system/lab_delayline.sh
  step "lab: throughput follows the schedule" python3 tests/system/lab_follow.py
  step "lab: application profiles (paced with offloads at the receiver, web)" python3 tests/system/lab_apps.py
  step "daemon: VictoriaMetrics, influxd 1.6.7, Prometheus, 5-minute outage" python3 tests/system/daemon_netns.py
  step "faults: interface vanishes, CSV disk full" python3 tests/system/faults.py
  step "web: the live page in headless Chromium, a capacity drop shown" python3 tests/system/web_netns.py
  step "one daemon, three interfaces: streams apart, byte totals equal to tcpdump's" python3 tests/system/multi_iface_netns.py
  step "kafka: every point once, in order, across a broker restart (tansu)" python3 tests/system/kafka_netns.py
  step "fleet: 1000 routers x 20 points/s into VictoriaMetrics, directly and through Kafka" python3 tests/system/fleet.py
else
  echo "test: not root, live namespace test skipped" >&2
fi
for f in "${failures[@]}"; do
  echo "=== FAILED: ${f%%|*}: the last 40 lines of ${f#*|}" >&2
  tail -n 40 "${f#*|}" >&2
done
names=$(printf '%s; ' "${failures[@]%%|*}")
echo "test.sh: $passed passed, $failed failed${failures[*]:+ (failed: ${names%; })}"
[ "$failed" = 0 ]
