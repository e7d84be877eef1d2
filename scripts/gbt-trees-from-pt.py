#!/usr/bin/env python3
"""Write a GBT model's trees as trees.bin beside its TorchScript file, for the native
batch evaluator (crates/model/src/native.rs). For a model directory made before
`netforecast train` wrote trees.bin itself: the traced module keeps the trees as
tensor constants, read here with torch.jit and located by the ops that use them.

    .venv-torch/bin/python scripts/gbt-trees-from-pt.py model_files

The daemon checks the native evaluator against the TorchScript module at load and
uses it only when they agree, so a wrong file is refused, never used.
"""
import re
import struct
import sys

import torch


def main(d):
    m = torch.jit.load(f"{d}/netforecast.pt")
    code, consts = m.code_with_constants
    c = lambda name: consts.const_mapping[name]  # noqa: E731
    feats = re.findall(r"torch\.index_select\(_\d+, 1, CONSTANTS\.(c\d+)\)", code)
    thrs = re.findall(r"torch\.gt\(torch\.reshape\(_\d+, \[-1, (\d+), (\d+)\]\), CONSTANTS\.(c\d+)\)", code)
    leaves = re.findall(r"torch\.take\(CONSTANTS\.(c\d+), torch\.add\(_\d+, CONSTANTS\.(c\d+)\)\)", code)
    bases = re.findall(r"torch\.add\(torch\.sum\(_\d+, \[1\]\), ([-+0-9.e]+)\)", code)
    if not (len(feats) == len(thrs) == len(leaves) == len(bases) == 2):
        sys.exit(f"gbt-trees-from-pt: {d}/netforecast.pt is not a two-ensemble GBT export "
                 f"({len(feats)} selects, {len(thrs)} comparisons, {len(leaves)} lookups, {len(bases)} sums)")
    out = bytearray(b"NFGBT1\0\0")
    out += struct.pack("<I", 2)
    for f, (t, depth, th), (lf, _off), base in zip(feats, thrs, leaves, bases):
        t, depth = int(t), int(depth)
        feature = c(f).to(torch.int64).reshape(-1)
        threshold = c(th).to(torch.float32).reshape(-1)
        leaf = c(lf).to(torch.float32).reshape(-1)
        assert feature.numel() == t * depth == threshold.numel() and leaf.numel() == t * (1 << depth)
        out += struct.pack("<IIf", depth, t, float(base))
        out += struct.pack(f"<{t * depth}I", *feature.tolist())
        out += struct.pack(f"<{t * depth}f", *threshold.tolist())
        out += struct.pack(f"<{leaf.numel()}f", *leaf.tolist())
        print(f"gbt-trees-from-pt: {t} trees of depth {depth}, base {base}")
    open(f"{d}/trees.bin", "wb").write(out)
    print(f"gbt-trees-from-pt: wrote {d}/trees.bin ({len(out)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model_files")
