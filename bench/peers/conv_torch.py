#!/usr/bin/python3
"""Peer timings for LsKd's convolution cases in `lskd bench report`: torch.nn.functional.conv2d forward, and the
input gradient and weight gradient each through aten.convolution_backward (the kernel autograd runs) with only
that output requested, on the CPU (or --device cuda).
Usage: /usr/bin/python3 bench/peers/conv_torch.py --threads 2 --specs N,C,H,W,K,R,S,stride,pad,groups;...
Prints one JSON line per spec and pass: {"spec", "pass", "median_ms", "p20_ms", "p80_ms"}."""
import argparse, json, time
import torch
import torch.nn.functional as F
import peer_device

def backward(dy, x, wt, stride, pad, groups, mask):
    return torch.ops.aten.convolution_backward(dy, x, wt, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], groups, mask)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--specs", required=True)
    ap.add_argument("--min-time", type=float, default=0.5)
    peer_device.add_argument(ap)
    a = ap.parse_args()
    dev = peer_device.setup(a, a.threads)
    g = torch.Generator().manual_seed(0)
    for text in a.specs.split(";"):
        n, c, h, w, k, r, s, stride, pad, groups = (int(v) for v in text.split(","))
        x = torch.randn(n, c, h, w, generator=g).to(dev)
        wt = (torch.randn(k, c // groups, r, s, generator=g) * 0.1).to(dev)
        y = F.conv2d(x, wt, stride=stride, padding=pad, groups=groups)
        dy = torch.randn(y.shape, generator=g).to(dev)
        passes = {
            "forward": lambda: F.conv2d(x, wt, stride=stride, padding=pad, groups=groups),
            "input grad": lambda: backward(dy, x, wt, stride, pad, groups, [True, False, False]),
            "weight grad": lambda: backward(dy, x, wt, stride, pad, groups, [False, True, False]),
        }
        for name, fn in passes.items():
            med, p20, p80 = peer_device.timeit(fn, a.min_time, dev)
            print(json.dumps({"spec": text, "pass": name, "median_ms": med, "p20_ms": p20, "p80_ms": p80, **peer_device.facts()}), flush=True)

if __name__ == "__main__":
    main()
