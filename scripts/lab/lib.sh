# Sourced by the lab scripts and tests: bring the three-namespace lab up and down.
#
#   lab_up SCHEDULE_CSV APPLIED_CSV LOG [QUEUE_MS] [SEED]  -> sets LAB_S LAB_R LAB_D
#          (LAB_OFFLOADS=on keeps GSO/TSO/GRO on, as on a real host)
#   lab_bg CMD...   start CMD in the background and remember its PID for lab_down
#   lab_down        end every remembered PID (TERM, then wait) and delete the namespaces
#
# Sender 198.18.0.1 (ns LAB_S, dev s0) -- router (LAB_R: r0 198.18.0.2, r1 198.18.0.5)
# -- receiver 198.18.0.6 (ns LAB_D, dev d0). Router traffic towards the receiver
# goes through the delay line (TUN nfdl, policy route table 100), then the tbf
# bottleneck on r1. No default routes: nothing can leave the namespaces.

LAB_PIDS=()
lab_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NF_LAB=${NF_LAB:-$lab_here/target/release/nf-lab}

lab_bg() {
  "$@" &
  LAB_PIDS+=($!)
}

lab_down() {
  local p
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  LAB_PIDS=()
  for ns in ${LAB_S:-} ${LAB_R:-} ${LAB_D:-}; do ip netns del "$ns" 2>/dev/null || true; done
}

lab_up() {
  local sched=$1 applied=$2 log=$3 queue_ms=${4:-100} seed=${5:-1}
  [ "$(id -u)" = 0 ] || { echo "lab: needs root for network namespaces; run with sudo" >&2; return 1; }
  [ -x "$NF_LAB" ] || { echo "lab: $NF_LAB not built; run cargo build --release" >&2; return 1; }
  local id=$$.$RANDOM
  id=${id//./}
  LAB_S=nfl-snd-$id LAB_R=nfl-rtr-$id LAB_D=nfl-rcv-$id
  local ns
  for ns in "$LAB_S" "$LAB_R" "$LAB_D"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  ip link add s0 netns "$LAB_S" type veth peer name r0 netns "$LAB_R"
  ip link add r1 netns "$LAB_R" type veth peer name d0 netns "$LAB_D"
  ip -n "$LAB_S" addr add 198.18.0.1/30 dev s0
  ip -n "$LAB_R" addr add 198.18.0.2/30 dev r0
  ip -n "$LAB_R" addr add 198.18.0.5/30 dev r1
  ip -n "$LAB_D" addr add 198.18.0.6/30 dev d0
  local pair
  for pair in "$LAB_S s0" "$LAB_R r0" "$LAB_R r1" "$LAB_D d0"; do
    set -- $pair
    ip -n "$1" link set "$2" up
    # Offloads off: frames on the capture look like frames on a wire. On (as a
    # real host's capture sees them): GSO/TSO super-frames, GRO-merged segments.
    if [ "${LAB_OFFLOADS:-off}" = on ]; then
      ip netns exec "$1" ethtool -K "$2" tso on gso on gro on >/dev/null 2>&1 || true
    else
      ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
    fi
  done
  ip -n "$LAB_S" route add 198.18.0.4/30 via 198.18.0.2
  ip -n "$LAB_D" route add 198.18.0.0/30 via 198.18.0.5
  ip netns exec "$LAB_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  local dur
  dur=$(awk -F, 'NR > 1 {t = $1} END {print int(t) + 600}' "$sched")
  lab_bg ip netns exec "$LAB_R" "$NF_LAB" delayline --tun nfdl --table 100 --schedule "$sched" --shape-dev r1 \
    --queue-ms "$queue_ms" --duration-s "$dur" --seed "$seed" --applied "$applied" 2> "$log"
  local _
  for _ in $(seq 100); do ip -n "$LAB_R" link show nfdl >/dev/null 2>&1 && break; sleep 0.05; done
  ip -n "$LAB_R" link show nfdl >/dev/null 2>&1 || { echo "lab: the delay line did not start: $(cat "$log")" >&2; return 1; }
  ip -n "$LAB_R" rule add iif r0 lookup 100
}
