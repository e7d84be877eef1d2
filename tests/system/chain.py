"""Three network namespaces in a row for the web tests: sender, router, receiver
(addresses from 198.18.0.0/15, no default routes, offloads off). The bottleneck
is a tbf on the router's egress towards the receiver, after the sender's veth:
a daemon capturing at the sender sees the queue it builds in its ACK RTT, as on
a host behind a slower link. Use as a context manager; on exit the namespaces
(and everything inside) are deleted."""

import subprocess


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Chain:
    def __init__(self, tag, net, rate_mbit):
        self.snd, self.rtr, self.rcv = f"nf{tag}-s", f"nf{tag}-m", f"nf{tag}-r"
        self.vs, self.vms, self.vmr, self.vr = (f"nf{tag}{x}"[:15] for x in ("s", "ms", "mr", "r"))
        self.snd_addr, self.rtr_s = f"198.18.{net}.1", f"198.18.{net}.2"
        self.rtr_r, self.rcv_addr = f"198.18.{net}.5", f"198.18.{net}.6"
        self.net, self.rate_mbit = net, rate_mbit

    def __enter__(self):
        for ns in (self.snd, self.rtr, self.rcv):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.vs, "netns", self.snd, "type", "veth", "peer", "name", self.vms, "netns", self.rtr)
        sh("ip", "link", "add", self.vmr, "netns", self.rtr, "type", "veth", "peer", "name", self.vr, "netns", self.rcv)
        for ns, dev, addr in ((self.snd, self.vs, self.snd_addr), (self.rtr, self.vms, self.rtr_s),
                              (self.rtr, self.vmr, self.rtr_r), (self.rcv, self.vr, self.rcv_addr)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", check=False)
        sh("ip", "-n", self.snd, "route", "add", f"198.18.{self.net}.4/30", "via", self.rtr_s)
        sh("ip", "-n", self.rcv, "route", "add", f"198.18.{self.net}.0/30", "via", self.rtr_r)
        sh("ip", "netns", "exec", self.rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.set_rate(self.rate_mbit)
        return self

    def set_rate(self, mbit):
        """The bottleneck's rate now (its queue holds up to 60 ms)."""
        sh("ip", "netns", "exec", self.rtr, "tc", "qdisc", "replace", "dev", self.vmr, "root", "tbf",
           "rate", f"{mbit}mbit", "burst", "32000", "latency", "60ms")
        self.rate_mbit = mbit

    def get(self, path, port=9898):
        """GET http://127.0.0.1:PORT/PATH inside the sender's namespace (its
        loopback is not ours): the body, also of an error answer; "" when
        nothing answers."""
        script = ("import sys,urllib.request as u, urllib.error as e\n"
                  "try:\n r=u.urlopen(sys.argv[1],timeout=5)\n"
                  "except e.HTTPError as x:\n r=x\n"
                  "sys.stdout.write(r.read().decode())\n")
        r = subprocess.run(self.in_snd("python3", "-c", script, f"http://127.0.0.1:{port}{path}"),
                           capture_output=True, text=True, timeout=15)
        return r.stdout

    def in_snd(self, *cmd):
        return ["ip", "netns", "exec", self.snd, *cmd]

    def in_rcv(self, *cmd):
        return ["ip", "netns", "exec", self.rcv, *cmd]

    def __exit__(self, *exc):
        for ns in (self.snd, self.rtr, self.rcv):
            sh("ip", "netns", "del", ns, check=False)
        return False


def influxd_conf(path, td):
    """An influxd 1.x configuration on 127.0.0.1:8086 with its data under td."""
    with open(path, "w") as f:
        f.write(f"""reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "{td}/influx/meta"
[data]
  dir = "{td}/influx/data"
  wal-dir = "{td}/influx/wal"
[http]
  bind-address = "127.0.0.1:8086"
  log-enabled = false
""")
    return path
