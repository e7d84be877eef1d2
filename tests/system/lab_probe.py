#!/usr/bin/env python3
"""UDP probes for the delay-line test: `send ADDR PORT SECONDS INTERVAL_MS` or
`recv PORT SECONDS OUT.csv`. Each probe carries its sequence number and send time
(CLOCK_REALTIME ns; sender and receiver share the host clock)."""
import socket
import struct
import sys
import time

if sys.argv[1] == "send":
    addr, port, secs, gap = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]) / 1000
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    end = time.time() + secs
    n = 0
    nxt = time.time()
    while time.time() < end:
        s.sendto(struct.pack("!QQ", n, time.time_ns()), (addr, port))
        n += 1
        nxt += gap
        time.sleep(max(0.0, nxt - time.time()))
    print(n)
else:
    port, secs, out = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.5)
    end = time.time() + secs
    with open(out, "w") as f:
        f.write("seq,sent_ns,recv_ns\n")
        while time.time() < end:
            try:
                data, _ = s.recvfrom(64)
            except socket.timeout:
                continue
            seq, sent = struct.unpack("!QQ", data[:16])
            f.write(f"{seq},{sent},{time.time_ns()}\n")
