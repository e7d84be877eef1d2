"""A sender/receiver network-namespace pair for the Python tests: a veth pair
with two addresses from 198.18.0.0/15 (`net` picks the /30), offloads off, a tbf
bottleneck at the sender, no default routes. Use as a context manager; on exit the
namespaces (and with them everything inside) are deleted."""

import subprocess


def stop_process(p, grace=10):
    """End a process this test started (by its handle, so by PID): SIGTERM, then
    SIGKILL after `grace` seconds."""
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class NetnsPair:
    def __init__(self, tag, net, rate_mbit):
        self.snd, self.rcv = f"nf{tag}-s", f"nf{tag}-r"
        self.vs, self.vr = f"nf{tag}s"[:15], f"nf{tag}r"[:15]
        self.snd_addr, self.rcv_addr = f"198.18.{net}.1", f"198.18.{net}.2"
        self.rate_mbit = rate_mbit

    def __enter__(self):
        sh("ip", "netns", "add", self.snd)
        sh("ip", "netns", "add", self.rcv)
        sh("ip", "link", "add", self.vs, "netns", self.snd, "type", "veth", "peer", "name", self.vr, "netns", self.rcv)
        sh("ip", "-n", self.snd, "addr", "add", f"{self.snd_addr}/30", "dev", self.vs)
        sh("ip", "-n", self.rcv, "addr", "add", f"{self.rcv_addr}/30", "dev", self.vr)
        for ns, dev in ((self.snd, self.vs), (self.rcv, self.vr)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", check=False)
        sh("ip", "netns", "exec", self.snd, "tc", "qdisc", "replace", "dev", self.vs, "root", "tbf",
           "rate", f"{self.rate_mbit}mbit", "burst", "32000", "latency", "40ms")
        return self

    def in_snd(self, *cmd):
        return ["ip", "netns", "exec", self.snd, *cmd]

    def in_rcv(self, *cmd):
        return ["ip", "netns", "exec", self.rcv, *cmd]

    def __exit__(self, *exc):
        sh("ip", "netns", "del", self.snd, check=False)
        sh("ip", "netns", "del", self.rcv, check=False)
        return False
