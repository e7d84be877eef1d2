#!/usr/bin/env bash
# Builds tansu 0.6.0 (a Kafka-protocol broker, from crates.io) with its SQLite
# storage, which keeps a topic across a restart, into /opt/tansu-sql (outside
# the repository; TANSU_ROOT overrides) unless it is there already. The Kafka
# test starts it and restarts it (tests/system/kafka_netns.py). The first build
# takes a while on 2 cores; later runs only check. Prints the binary's path.
set -euo pipefail
root=${TANSU_ROOT:-/opt/tansu-sql}
bin=$root/bin/tansu
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q '0\.6\.0'; then
  echo "$bin"
  exit 0
fi
export PATH="$HOME/.cargo/bin:$PATH"
echo "setup-tansu: building tansu 0.6.0 with SQLite storage into $root (once)" >&2
cargo install tansu --version 0.6.0 --locked --features libsql --root "$root" >&2
echo "$bin"
