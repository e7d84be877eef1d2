#!/usr/bin/env bash
# One lab trace: real TCP through a changing bottleneck, captured at the sender.
#
#   sudo scripts/lab/run.sh --profile steps --seed 1 --seconds 60 --out DIR
#        [--cc cubic] [--flows 1] [--snaplen 128] [--queue-ms 100] [--name NAME]
#        [--schedule CSV]   (play this time_s,rate_mbps,delay_ms,jitter_ms,loss file instead)
#        [--capture-at sender|receiver] [--offloads off|on]
#
# Profiles: the backlogged ones (steps ramps random-walk outages cellular
# loss-bursts delay-steps on-off: `nf-lab send` pushes bulk data) and the
# application ones (video web interactive paced mixture: `nf-lab client` in the
# receiver asks `nf-lab serve` in the sender for data; mixture adds bulk flows).
#
# Three network namespaces: sender -- router -- receiver, joined by veth pairs
# with addresses from the 198.18.0.0/15 benchmarking range and no default routes.
# In the router, traffic towards the receiver passes a userspace delay line on a
# TUN device (one-way delay, jitter, loss; this kernel has no netem) and then a
# tbf bottleneck that the delay line re-rates in place as the schedule plays.
# Offloads are off so frames look like a wire. The capture (tcpdump at the
# sender, where ACK RTT is the path RTT) goes to DIR/NAME.pcap, the schedule as
# applied (Unix time, rate, delay, jitter, loss) to DIR/NAME.schedule.csv, and a
# one-line JSON record to DIR/NAME.json. A trap ends every process started here
# by PID and deletes the namespaces on exit or interrupt.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
profile="" seed=1 seconds=60 out="" cc=cubic flows=1 snaplen=128 queue_ms=100 name="" plan="" at=sender offloads=off
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cc) cc=$2; shift 2 ;;
    --flows) flows=$2; shift 2 ;;
    --snaplen) snaplen=$2; shift 2 ;;
    --queue-ms) queue_ms=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --schedule) plan=$2; shift 2 ;;
    --capture-at) at=$2; shift 2 ;;
    --offloads) offloads=$2; shift 2 ;;
    *) echo "lab: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$profile" ] && [ -n "$out" ] || { echo "lab: give --profile P and --out DIR" >&2; exit 2; }
case "$at" in sender|receiver) ;; *) echo "lab: --capture-at is sender or receiver, not $at" >&2; exit 2 ;; esac
case "$offloads" in on|off) ;; *) echo "lab: --offloads is on or off, not $offloads" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "lab: needs root for network namespaces; run with sudo" >&2; exit 1; }
for t in ip tc tcpdump; do
  command -v $t >/dev/null || { echo "lab: $t is missing; run scripts/setup.sh" >&2; exit 1; }
done
lab=${NF_LAB:-$here/target/release/nf-lab}
[ -x "$lab" ] || { echo "lab: $lab not built; run cargo build --release" >&2; exit 1; }
mkdir -p "$out"
name=${name:-$profile-s$seed-$cc-f$flows}
pcap=$out/$name.pcap

source "$here/scripts/lab/lib.sh"
NF_LAB=$lab
export LAB_OFFLOADS=$offloads
bulk=$flows app=0
case "$profile" in
  video|web|interactive|paced|mixture)
    app=1
    mix=$("$lab" mix --profile "$profile" --seed "$seed")
    bulk=$(sed -E 's/.*bulk=([0-9]+).*/\1/' <<< "$mix") ;;
esac
trap lab_down EXIT INT TERM
sched=$out/$name.plan.csv
if [ -n "$plan" ]; then
  cp "$plan" "$sched"
else
  "$lab" schedule --profile "$profile" --seed "$seed" --duration-s "$seconds" > "$sched"
fi
lab_up "$sched" "$out/$name.schedule.csv" "$out/$name.delayline.log" "$queue_ms" "$seed"
S=$LAB_S D=$LAB_D
lab_bg ip netns exec "$D" "$lab" sink --listen 198.18.0.6:5201 --duration-s $((seconds + 10))
if [ "$app" = 1 ]; then lab_bg ip netns exec "$S" "$lab" serve --listen 198.18.0.1:5301 --cc "$cc" --duration-s $((seconds + 10)) 2> "$out/$name.serve.log"; fi
if [ "$at" = sender ]; then cap_ns=$S cap_dev=s0; else cap_ns=$D cap_dev=d0; fi
ip netns exec "$cap_ns" tcpdump -i "$cap_dev" -s "$snaplen" -w "$pcap" -U tcp 2> "$out/$name.tcpdump.log" &
dump=$!
LAB_PIDS+=($dump)
sleep 0.5
send_pid=""
if [ "$bulk" -gt 0 ]; then
  ip netns exec "$S" "$lab" send --to 198.18.0.6:5201 --flows "$bulk" --cc "$cc" --duration-s "$seconds" \
    --profile "$profile" --seed "$seed" 2> "$out/$name.send.log" &
  send_pid=$!
  LAB_PIDS+=($send_pid)
fi
if [ "$app" = 1 ]; then
  ip netns exec "$D" "$lab" client --to 198.18.0.1:5301 --profile "$profile" --seed "$seed" --duration-s "$seconds" \
    2> "$out/$name.client.log" || { echo "lab: client failed: $(cat "$out/$name.client.log")" >&2; exit 1; }
fi
if [ -n "$send_pid" ]; then
  wait "$send_pid" || { echo "lab: sender failed: $(cat "$out/$name.send.log")" >&2; exit 1; }
fi
sleep 0.5
kill -INT "$dump"; wait "$dump" 2>/dev/null || true
lab_down
trap - EXIT INT TERM
drops=$(grep -oE '[0-9]+ packets dropped by kernel' "$out/$name.tcpdump.log" | grep -oE '^[0-9]+' || echo 0)
packets=$(grep -oE '^[0-9]+ packets captured' "$out/$name.tcpdump.log" | grep -oE '^[0-9]+' || echo 0)
bytes=$(stat -c %s "$pcap")
printf '{"name":"%s","profile":"%s","seed":%s,"cc":"%s","flows":%s,"seconds":%s,"packets":%s,"pcap_bytes":%s,"kernel_drops":%s,"capture_at":"%s","offloads":"%s"}\n' \
  "$name" "$profile" "$seed" "$cc" "$bulk" "$seconds" "$packets" "$bytes" "$drops" "$at" "$offloads" > "$out/$name.json"
rm -f "$out/$name.tcpdump.log"
echo "lab: $pcap ($packets packets, kernel drops $drops); $(cat "$out/$name.delayline.log")" >&2
