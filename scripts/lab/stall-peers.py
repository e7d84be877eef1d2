#!/usr/bin/env python3
"""The two ends of a bulk transfer whose receiving application stalls.

  stall-peers.py receive ADDR PORT SEED SECONDS
  stall-peers.py send ADDR PORT SECONDS CC

The sender writes as fast as TCP (congestion control CC) lets it. The
receiver plays a schedule drawn from SEED: it reads at full speed for 1-4 s,
then either stops reading for 0.5-3 s (its window fills and closes: zero
windows, probes) or trickles, reading 4, 16 or 64 kB every 20-200 ms for 1-3 s
(a window that opens a little at a time), as a slow consumer (a disk, a paused
player, a busy application) does. Each phase is printed on stderr with its
start time, so the capture can be judged against it. Both ends stop after
SECONDS.
"""
import random
import socket
import sys
import time


def receive(addr, port, seed, seconds):
    rng = random.Random(seed)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A modest buffer, so a stopped reader closes the window within a second.
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    srv.bind((addr, port))
    srv.listen(1)
    conn, _ = srv.accept()
    end = time.monotonic() + seconds
    buf = bytearray(1 << 20)
    phase = "read"
    while time.monotonic() < end:
        if phase == "read":
            until = time.monotonic() + rng.uniform(1, 4)
            print(f"{time.time():.3f} read", file=sys.stderr, flush=True)
            conn.settimeout(0.05)
            while time.monotonic() < min(until, end):
                try:
                    if conn.recv_into(buf) == 0:
                        return
                except socket.timeout:
                    pass
            phase = rng.choice(["stop", "trickle"])
        elif phase == "stop":
            print(f"{time.time():.3f} stop", file=sys.stderr, flush=True)
            time.sleep(max(0.0, min(rng.uniform(0.5, 3), end - time.monotonic())))
            phase = "read"
        else:
            until = time.monotonic() + rng.uniform(1, 3)
            chunk, gap = rng.choice([4, 16, 64]) * 1024, rng.uniform(0.02, 0.2)
            print(f"{time.time():.3f} trickle {chunk} {gap:.3f}", file=sys.stderr, flush=True)
            conn.settimeout(gap)
            while time.monotonic() < min(until, end):
                try:
                    if conn.recv_into(buf, chunk) == 0:
                        return
                except socket.timeout:
                    pass
                time.sleep(gap)
            phase = "read"
    conn.close()


def send(addr, port, seconds, cc):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    s.settimeout(5)
    s.connect((addr, port))
    s.settimeout(0.5)
    data = bytes(64 * 1024)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s.send(data)
        except socket.timeout:
            pass
        except (BrokenPipeError, ConnectionResetError):
            break
    s.close()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "receive":
        receive(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) == 6 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        print("usage: stall-peers.py receive ADDR PORT SEED SECONDS | send ADDR PORT SECONDS CC", file=sys.stderr)
        sys.exit(2)
