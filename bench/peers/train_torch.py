#!/usr/bin/python3
"""Peer for `lskd bench train`: the same architectures as src/Nets (CIFAR-style ResNet-6n+2 with 1x1 projection
shortcuts, MobileNetV2 for 28x28 with the same stages), one training step = forward, cross_entropy with
label_smoothing=0.1, backward, SGD(momentum 0.9, weight decay 5e-4). Synthetic 1x28x28 inputs, batch B,
PyTorch's CPU backend (oneDNN) with the given thread count, flush-to-zero on. PyTorch at its best: every model
is built and warmed up first, then timed in alternating rounds, and each model's best round (the median step of
that round) is reported. Prints JSON lines {"model", "img_per_s", "rounds_img_per_s", ...}."""
import argparse, json, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F
import peer_device

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))

class ResNet(nn.Module):
    def __init__(self, depth, width=16, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Conv2d(1, width, 3, 1, 1, bias=False); self.bn = nn.BatchNorm2d(width)
        blocks, c = [], width
        for stage in range(3):
            w = width << stage
            for b in range(n):
                blocks.append(BasicBlock(c, w, 2 if stage > 0 and b == 0 else 1)); c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)
    def forward(self, x):
        h = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

def round8(c):
    return max(8, int(c + 4) // 8 * 8)

class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
    def forward(self, x):
        h = self.body(x)
        return h + x if self.residual else h

class MobileNetV2(nn.Module):
    STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 1), (6, 96, 1, 1)]
    def __init__(self, width=1.0, classes=10, last=256, dropout=0.2):
        super().__init__()
        c = round8(32 * width)
        layers = [nn.Conv2d(1, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6()]
        for t, ch, n, s in self.STAGES:
            out = round8(ch * width)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t)); c = out
        lc = round8(last * max(1.0, width))
        layers += [nn.Conv2d(c, lc, 1, bias=False), nn.BatchNorm2d(lc), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(lc, classes)
    def forward(self, x):
        return self.fc(self.dropout(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)))

def make(name):
    if name.startswith("resnet"):
        return ResNet(int(name[6:]))
    if name == "mobilenetv2":
        return MobileNetV2()
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    raise SystemExit(f"unknown model {name}")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per model and round")
    ap.add_argument("--warmup", type=int, default=8, help="untimed steps per model before the first round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all models, alternating; the best round is reported")
    ap.add_argument("--models", default="resnet20,resnet8,mobilenetv2")
    peer_device.add_argument(ap)
    a = ap.parse_args()
    dev = peer_device.setup(a, a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    steps = {}
    for name in a.models.split(","):
        model = make(name).to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        def step(model=model, opt=opt):
            opt.zero_grad()
            F.cross_entropy(model(x), y, label_smoothing=0.1).backward()
            opt.step()
        # Every model warmed up before any is timed: the first model run otherwise pays the allocator's and
        # oneDNN's first-use costs inside its timed steps.
        for _ in range(a.warmup):
            step()
        peer_device.sync(dev)
        steps[name] = (step, sum(p.numel() for p in model.parameters()))
    medians = {name: [] for name in steps}
    for _ in range(a.rounds):
        for name, (step, _) in steps.items():
            times = []
            for _ in range(a.steps):
                t0 = time.perf_counter(); step(); peer_device.sync(dev); times.append(time.perf_counter() - t0)
            medians[name].append(statistics.median(times))
    for name, (_, params) in steps.items():
        best = min(medians[name])
        print(json.dumps({"model": name, "img_per_s": a.batch / best, "step_ms": best * 1e3,
                          "rounds_img_per_s": [round(a.batch / m, 1) for m in medians[name]], "parameters": params,
                          "device": a.device, **peer_device.facts()}), flush=True)

if __name__ == "__main__":
    main()
