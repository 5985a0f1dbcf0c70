"""Device choice shared by the peers: `--device cpu` (default, Debian's python3-torch) or `--device cuda` (a GPU
build of PyTorch, for comparing with `lskd bench ... --device cuda`). `sync()` waits for queued GPU work, so that
host clocks around a call measure the work and not its launch."""
import time
import torch

def add_argument(parser):
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])

def setup(args):
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this PyTorch sees no CUDA GPU")
    return torch.device(args.device)

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()

def timeit(fn, min_time, device):
    """Three warm-up calls, then synchronised runs for at least min_time seconds (five at least):
    (median, p20, p80) in milliseconds."""
    for _ in range(3):
        fn()
    sync(device)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t0 = time.perf_counter(); fn(); sync(device); times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    q = lambda p: times[round(p * (len(times) - 1))]
    return q(0.5), q(0.2), q(0.8)
