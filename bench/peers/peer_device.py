"""Device choice shared by the peers: `--device cpu` (default, Debian's python3-torch) or `--device cuda` (a GPU
build of PyTorch, for comparing with `lskd bench ... --device cuda`). `sync()` waits for queued GPU work, so that
host clocks around a call measure the work and not its launch."""
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
