#!/usr/bin/python3
"""Peer timings for LsKd's fused losses: PyTorch's composed ops on the CPU, forward + backward.
KD: kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction='batchmean') * T^2, then backward.
LS-CE: cross_entropy(z, y, label_smoothing=alpha), then backward.
Prints JSON lines {"kernel", "median_ms", "p20_ms", "p80_ms"}; kernel names match `lskd bench losses`."""
import argparse, json, statistics, time
import torch
import peer_device
import torch.nn.functional as F

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--min-time", type=float, default=1.0)
    peer_device.add_argument(ap)
    a = ap.parse_args()
    dev = peer_device.setup(a, a.threads)
    g = torch.Generator().manual_seed(0)
    zs = (torch.randn(a.rows, a.cols, generator=g) * 3).to(dev).requires_grad_()
    zt = (torch.randn(a.rows, a.cols, generator=g) * 3).to(dev)
    y = torch.randint(0, a.cols, (a.rows,), generator=g).to(dev)
    T = 4.0

    def kd():
        zs.grad = None
        loss = F.kl_div(F.log_softmax(zs / T, dim=1), F.softmax(zt / T, dim=1), reduction="batchmean") * T * T
        loss.backward()

    def ls():
        zs.grad = None
        F.cross_entropy(zs, y, label_smoothing=0.1).backward()

    for name, fn in (("kd fwd+bwd (T=4, beta=1)", kd), ("ls-ce fwd+bwd (alpha=0.1)", ls)):
        med, p20, p80 = peer_device.timeit(fn, a.min_time, dev)
        print(json.dumps({"kernel": name, "median_ms": med, "p20_ms": p20, "p80_ms": p80, "device": a.device, **peer_device.facts()}), flush=True)

if __name__ == "__main__":
    main()
