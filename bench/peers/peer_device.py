"""Device choice shared by the peers: `--device cpu` (default, Debian's python3-torch) or `--device cuda` (a GPU
build of PyTorch, for comparing with `lskd bench ... --device cuda`). `sync()` waits for queued GPU work, so that
host clocks around a call measure the work and not its launch.

Every peer runs PyTorch at its best: `setup()` turns on flush-to-zero (`torch.set_flush_denormal(True)`, MXCSR
FTZ+DAZ on x86, as LsKd's CPU backend runs by default), because with gradual underflow PyTorch's CPU kernels can
fall into microcoded subnormal arithmetic and run 25 % or more slower, which would flatter LsKd."""
import time
import torch

def add_argument(parser):
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])

def setup(args, threads=None):
    """The device; also sets flush-to-zero and, when given, the CPU thread count."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this PyTorch sees no CUDA GPU")
    global FLUSH_DENORMAL
    FLUSH_DENORMAL = bool(torch.set_flush_denormal(True))
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.device(args.device)

FLUSH_DENORMAL = False

def facts():
    """What every JSON line carries about the peer's mode."""
    return {"torch": torch.__version__, "flush_denormal": FLUSH_DENORMAL, "threads": torch.get_num_threads()}

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()

def timeit(fn, min_time, device, warmup=3):
    """Warm-up calls (until at least a tenth of min_time has passed), then synchronised runs for at least
    min_time seconds (five at least): (median, p20, p80) in milliseconds."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    while time.perf_counter() - start < min_time / 10:
        fn()
    sync(device)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t0 = time.perf_counter(); fn(); sync(device); times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    q = lambda p: times[round(p * (len(times) - 1))]
    return q(0.5), q(0.2), q(0.8)
