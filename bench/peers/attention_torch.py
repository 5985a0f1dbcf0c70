#!/usr/bin/python3
"""Peer timings for LsKd's fused attention: PyTorch's composed attention on the CPU, forward + backward:
s = q @ k^T / sqrt(d); masked_fill(mask, -inf); p = softmax(s); o = p @ v; o.backward(dO).
q, k, v are [B, H, L, d] contiguous (the layout most favourable to PyTorch's batched matmul).
Prints JSON lines {"case", "median_ms", "p20_ms", "p80_ms"}; case names match `lskd bench attention`."""
import argparse, json, math
import torch
import peer_device

def parse_case(text):
    kind, b, h, lq, lk, d = text.split(":")
    return kind, int(b), int(h), int(lq), int(lk), int(d)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", required=True, help="comma-separated kind:B:H:Lq:Lk:d, kind = causal or padded")
    ap.add_argument("--min-time", type=float, default=1.0)
    peer_device.add_argument(ap)
    a = ap.parse_args()
    dev = peer_device.setup(a, a.threads)
    for text in a.cases.split(","):
        kind, b, h, lq, lk, d = parse_case(text)
        g = torch.Generator().manual_seed(0)
        q = torch.randn(b, h, lq, d, generator=g).to(dev).requires_grad_()
        k = torch.randn(b, h, lk, d, generator=g).to(dev).requires_grad_()
        v = torch.randn(b, h, lk, d, generator=g).to(dev).requires_grad_()
        do = torch.randn(b, h, lq, d, generator=g).to(dev)
        if kind == "causal":
            mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq).logical_not().to(dev)   # True = masked
        else:
            # Key padding: batch row i keeps the first lengths[i] keys (the same lengths as LsKd's case).
            lengths = [lk - (i * 7) % max(1, lk // 2) for i in range(b)]
            mask = torch.zeros(b, 1, 1, lk, dtype=torch.bool)
            for i, n in enumerate(lengths):
                mask[i, :, :, n:] = True
            mask = mask.to(dev)
        scale = 1.0 / math.sqrt(d)

        def step():
            q.grad = k.grad = v.grad = None
            s = torch.matmul(q, k.transpose(-2, -1)) * scale
            s = s.masked_fill(mask, float("-inf"))
            p = torch.softmax(s, dim=-1)
            o = torch.matmul(p, v)
            o.backward(do)

        med, p20, p80 = peer_device.timeit(step, a.min_time, dev)
        print(json.dumps({"case": text, "median_ms": med, "p20_ms": p20, "p80_ms": p80, "device": a.device, **peer_device.facts()}), flush=True)

if __name__ == "__main__":
    main()
