#!/usr/bin/python3
"""Peer timings for LsKd's analysis benchmark: the same kernels through PyTorch on the CPU (Debian's
python3-torch with OpenBLAS/LAPACK) on a features matrix of the same size. Prints one JSON object per kernel:
{"kernel","median_ms"}. Usage: /usr/bin/python3 bench/peers/analysis_torch.py --threads 2 --rows 60000 --dim 512
"""
import argparse, json, statistics, time
import torch
import peer_device

def timed(fn, runs, dev):
    fn()
    peer_device.sync(dev)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        peer_device.sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    peer_device.add_argument(ap)
    args = ap.parse_args()
    dev = peer_device.setup(args, args.threads)
    torch.manual_seed(0)
    n, d, classes, m = args.rows, args.dim, 10, min(4000, args.rows)
    x = torch.randn(n, d).to(dev)
    labels = ((torch.arange(n, dtype=torch.int64) * 2654435761 % 2**32) % classes).to(dev)
    counts = torch.bincount(labels, minlength=classes).clamp(min=1).unsqueeze(1).float()

    def centroids():
        return torch.zeros(classes, d, device=dev).index_add_(0, labels, x) / counts
    c = centroids()

    def pca():
        xc = x - x.mean(0)
        cov = xc.T @ xc / (n - 1)
        vals, vecs = torch.linalg.eigh(cov)
        return xc @ vecs[:, -2:]
    cov = torch.cov(x.T)
    results = {
        "class centroids": timed(centroids, args.runs, dev),
        "distances to centroids": timed(lambda: torch.cdist(x, c, compute_mode="donot_use_mm_for_euclid_dist"), args.runs, dev),
        "pairwise distances": timed(lambda: torch.cdist(x[:m], x[:m], compute_mode="donot_use_mm_for_euclid_dist"), args.runs, dev),
        "Householder QR (Q and R)": timed(lambda: torch.linalg.qr(x, mode="reduced"), args.runs, dev),
        "PCA fit (centring, covariance, eigen)": timed(pca, args.runs, dev),
        "  of which symmetric eigen": timed(lambda: torch.linalg.eigh(cov), args.runs, dev),
    }
    for k, v in results.items():
        print(json.dumps({"kernel": k, "median_ms": v, "threads": args.threads, "device": args.device, **peer_device.facts()}), flush=True)

if __name__ == "__main__":
    main()
