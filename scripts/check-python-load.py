#!/usr/bin/env python3
"""Python's torch.jit.load runs the shipped module and agrees with netforecast.

    scripts/check-python-load.sh            # makes the venv if needed, then runs this
    PYTHON_WITH_TORCH scripts/check-python-load.py [--model model_files] [--capture C]

Extracts the capture's features with `netforecast extract`, builds every
15-window sequence in Python, runs the TorchScript module at batch sizes 1, 7
and 1000, and compares each forecast with the predictions CSV that
`netforecast replay` (Rust, tch) writes for the same capture. Exit 0 when every
forecast agrees (1e-4 relative on throughput, 1e-5 on the probability).
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    sys.exit("check-python-load: this Python has no torch; run scripts/check-python-load.sh")

LOOKBACK = 15


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="model_files")
    ap.add_argument("--capture", default="tests/data/lab-cellular-s3.pcap.gz")
    ap.add_argument("--netforecast", default="target/release/netforecast")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        feats = os.path.join(d, "f.csv")
        preds = os.path.join(d, "p.csv")
        subprocess.run([a.netforecast, "extract", "-q", a.capture, "--out", feats], check=True)
        subprocess.run([a.netforecast, "replay", "-q", "--model-only", a.capture, "--model", a.model, "--out", preds], check=True)
        with open(feats) as f:
            rows = list(csv.reader(f))[1:]
        with open(preds) as f:
            rust = {r["window_start"]: r for r in csv.DictReader(f)}
    starts = [r[0] for r in rows]
    x = torch.tensor([[float(v) for v in r[1:]] for r in rows], dtype=torch.float32)
    seqs = torch.stack([x[t - LOOKBACK + 1 : t + 1] for t in range(LOOKBACK - 1, len(rows) - 1)])
    targets = starts[LOOKBACK:]
    m = torch.jit.load(os.path.join(a.model, "netforecast.pt"))
    m.eval()
    worst = (0.0, 0.0)
    with torch.no_grad():
        outs = {}
        for b in (1, 7, 1000):
            parts = [m(seqs[i : i + b]) for i in range(0, len(seqs), b)]
            out = torch.cat(parts)
            assert out.shape == (len(seqs), 2), f"batch {b}: shape {tuple(out.shape)}"
            outs[b] = out
        for b in (7, 1000):
            d = (outs[b] - outs[1]).abs().max().item()
            assert d <= 1e-4, f"batch {b} differs from batch 1 by {d}"
    compared = 0
    for i, start in enumerate(targets):
        r = rust.get(start)
        if r is None:
            continue
        thr, prob = outs[1][i].tolist()
        rt, rp = float(r["predicted_mbps"]), float(r["congestion_prob"])
        dt = abs(thr - rt) / max(1.0, abs(rt))
        dp = abs(prob - rp)
        worst = (max(worst[0], dt), max(worst[1], dp))
        if dt > 1e-4 or dp > 1e-5:
            sys.exit(f"check-python-load: window {start}: Python {thr:.6f} / {prob:.6f}, Rust {rt:.6f} / {rp:.6f}")
        compared += 1
    if compared == 0 or compared != len(rust):
        sys.exit(f"check-python-load: compared {compared} forecasts, Rust wrote {len(rust)}")
    print(
        f"check-python-load: torch {torch.__version__} loaded {a.model}/netforecast.pt; batches 1, 7, 1000 agree; "
        f"{compared} forecasts equal to netforecast's (worst relative throughput difference {worst[0]:.1e}, "
        f"probability {worst[1]:.1e})"
    )


if __name__ == "__main__":
    main()
