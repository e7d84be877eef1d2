#!/usr/bin/env bash
# A real TCP transfer between two network namespaces, captured at the sender.
#
#   scripts/lab/netns-transfer.sh --out F.pcap [--seconds 10] [--rates "50:3,10:3,100:4"]
#                                 [--cc cubic] [--snaplen 128] [--parallel 1]
#                                 [--offloads on] [--bitrate 8M] [--stalls SEED]
#
# Sender and receiver namespaces are joined by a veth pair with addresses from the
# 198.18.0.0/15 benchmarking range and no default route, so traffic cannot leave.
# Offloads (TSO/GSO/GRO) are off so frames look like a wire, unless --offloads on
# (what a real host's tcpdump sees: GSO/TSO super-frames). --bitrate paces the
# iperf3 sender (-b, an application-limited sender). --stalls replaces iperf3 with
# scripts/lab/stall-peers.py: a bulk sender to a receiving application that stops
# reading or reads slowly (zero and small windows), its phases drawn from SEED and
# written with their times to F.pcap.stalls. --rates plays a
# schedule of "Mbit/s:seconds" steps on a tbf bottleneck at the sender's egress
# (empty: no bottleneck). tcpdump captures at the sender with the given snap
# length. Everything started is stopped by PID and both namespaces are deleted on
# exit or interrupt. Needs root.
set -euo pipefail

out="" seconds=10 rates="" cc=cubic snaplen=128 parallel=1 offloads=off bitrate="" stalls=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --cc) cc=$2; shift 2 ;;
    --snaplen) snaplen=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --offloads) offloads=$2; shift 2 ;;
    --bitrate) bitrate=$2; shift 2 ;;
    --stalls) stalls=$2; shift 2 ;;
    *) echo "netns-transfer: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "netns-transfer: give --out FILE.pcap" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "netns-transfer: needs root (network namespaces); run with sudo" >&2; exit 1; }
for t in ip tc tcpdump iperf3; do
  command -v $t >/dev/null || { echo "netns-transfer: $t is missing; run scripts/setup.sh" >&2; exit 1; }
done

id=$$
snd=nf-snd-$id rcv=nf-rcv-$id
vs=nfs$id vr=nfr$id
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  ip netns del "$snd" 2>/dev/null || true
  ip netns del "$rcv" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$snd"
ip netns add "$rcv"
ip link add "$vs" netns "$snd" type veth peer name "$vr" netns "$rcv"
ip -n "$snd" addr add 198.18.0.1/30 dev "$vs"
ip -n "$rcv" addr add 198.18.0.2/30 dev "$vr"
ip -n "$snd" link set lo up
ip -n "$rcv" link set lo up
ip -n "$snd" link set "$vs" up
ip -n "$rcv" link set "$vr" up
if [ "$offloads" = off ] && command -v ethtool >/dev/null; then
  ip netns exec "$snd" ethtool -K "$vs" tso off gso off gro off >/dev/null 2>&1 || true
  ip netns exec "$rcv" ethtool -K "$vr" tso off gso off gro off >/dev/null 2>&1 || true
fi

set_rate() { # Mbit/s
  local burst=$(( $1 * 1000000 / 8 / 250 )); [ $burst -lt 16000 ] && burst=16000
  ip netns exec "$snd" tc qdisc replace dev "$vs" root tbf rate "${1}mbit" burst "$burst" latency 40ms
}
first_rate=${rates%%:*}
[ -n "$rates" ] && set_rate "$first_rate"

peers=$(dirname "$0")/stall-peers.py
if [ -n "$stalls" ]; then
  ip netns exec "$rcv" python3 "$peers" receive 198.18.0.2 5201 "$stalls" "$seconds" 2>"$out.stalls" &
else
  ip netns exec "$rcv" iperf3 -s -1 -B 198.18.0.2 >/dev/null 2>&1 &
fi
pids+=($!)
ip netns exec "$snd" tcpdump -i "$vs" -s "$snaplen" -w "$out" -U "tcp" 2>/dev/null &
pids+=($!)
sleep 0.5
if [ -n "$stalls" ]; then
  ip netns exec "$snd" timeout $((seconds + 10)) python3 "$peers" send 198.18.0.2 5201 "$seconds" "$cc" &
else
  ip netns exec "$snd" timeout $((seconds + 10)) iperf3 -c 198.18.0.2 -t "$seconds" -C "$cc" -P "$parallel" ${bitrate:+-b "$bitrate"} >/dev/null &
fi
client=$!
if [ -n "$rates" ]; then
  IFS=, read -ra steps <<< "$rates"
  for st in "${steps[@]}"; do
    set_rate "${st%%:*}"
    sleep "${st##*:}"
  done
fi
wait $client || { echo "netns-transfer: the sender failed" >&2; exit 1; }
sleep 0.3
cleanup
trap - EXIT INT TERM
echo "netns-transfer: wrote $out" >&2
