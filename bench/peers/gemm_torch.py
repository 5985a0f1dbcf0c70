#!/usr/bin/python3
"""Peer timings for LsKd's GEMM benchmark: the same shapes through PyTorch on the CPU (Debian's python3-torch
with OpenBLAS). Prints one JSON object per shape: {"m","n","k","threads","median_ms","p20_ms","p80_ms","gflops"}.
Usage: /usr/bin/python3 bench/peers/gemm_torch.py --threads 2 --shapes 64x64x64,1024x1024x1024
"""
import argparse, json, statistics, time
import torch
import peer_device

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", required=True, help="comma-separated MxNxK")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per shape")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores in matmul (CUDA)")
    peer_device.add_argument(ap)
    args = ap.parse_args()
    dev = peer_device.setup(args)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for shape in args.shapes.split(","):
        m, n, k = (int(v) for v in shape.split("x"))
        a = torch.rand(m, k, device=dev) * 2 - 1
        b = torch.rand(k, n, device=dev) * 2 - 1
        c = torch.empty(m, n, device=dev)
        for _ in range(3):
            torch.mm(a, b, out=c)
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < args.min_time or len(times) < 5:
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            peer_device.sync(dev)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        times.sort()
        q = lambda p: times[round(p * (len(times) - 1))] * 1e3
        print(json.dumps({"m": m, "n": n, "k": k, "threads": args.threads, "device": args.device, "tf32": args.tf32, "median_ms": med * 1e3,
                          "p20_ms": q(0.2), "p80_ms": q(0.8),
                          "gflops": 2.0 * m * n * k / med / 1e9, **peer_device.facts()}), flush=True)

if __name__ == "__main__":
    main()
