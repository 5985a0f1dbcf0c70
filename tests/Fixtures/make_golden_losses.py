#!/usr/bin/python3
"""Golden values for LsKd's fused losses, computed once with PyTorch (Debian's python3-torch) in float64.
Run: /usr/bin/python3 tests/Fixtures/make_golden_losses.py > tests/Fixtures/golden_losses.json
The tests read the JSON only; they never need Python. Inputs are stored as float32-representable numbers so
that LsKd's float32 kernels see exactly the inputs PyTorch saw."""
import json
import torch
import torch.nn.functional as F

def logits(g, rows, cols, scale, confident):
    z = (torch.randn(rows, cols, generator=g, dtype=torch.float64) * scale).float().double()
    if confident:
        # A few logits per row multiplied by 20, as in the confident case.
        for r in range(rows):
            for c in torch.randint(0, cols, (2,), generator=g).tolist():
                z[r, c] *= 20
    return z

def main():
    g = torch.Generator().manual_seed(20261126)
    cases = []
    shapes = [(1, 2, 1.0, False), (3, 10, 2.0, False), (4, 7, 1.0, True), (2, 33, 30.0, False)]
    for rows, cols, scale, confident in shapes:
        zs = logits(g, rows, cols, scale, confident)
        zt = logits(g, rows, cols, scale, confident)
        y = torch.randint(0, cols, (rows,), generator=g)
        entry = {"rows": rows, "cols": cols, "student": zs.flatten().tolist(), "teacher": zt.flatten().tolist(),
                 "labels": y.tolist(), "ls": [], "kd": [], "softmax": []}
        for alpha in (0.0, 0.1, 0.2):
            z = zs.clone().requires_grad_()
            loss = F.cross_entropy(z, y, label_smoothing=alpha)
            loss.backward()
            entry["ls"].append({"alpha": alpha, "loss": loss.item(), "grad": z.grad.flatten().tolist()})
        for T in (0.5, 1.0, 2.0, 4.0, 64.0):
            for beta in (0.0, 0.5, 1.0):
                for alpha in ((0.0, 0.1) if beta < 1 else (0.0,)):
                    z = zs.clone().requires_grad_()
                    kl = F.kl_div(F.log_softmax(z / T, dim=1), F.softmax(zt / T, dim=1), reduction="batchmean") * T * T
                    ce = F.cross_entropy(z, y, label_smoothing=alpha)
                    loss = (1 - beta) * ce + beta * kl
                    loss.backward()
                    entry["kd"].append({"temperature": T, "beta": beta, "alpha": alpha, "loss": loss.item(),
                                        "grad": z.grad.flatten().tolist()})
            p = F.softmax(zs / T, dim=1)
            logp = F.log_softmax(zs / T, dim=1)
            entropy = -(p * logp).sum(dim=1)
            entry["softmax"].append({"temperature": T, "softmax": p.flatten().tolist(), "log_softmax": logp.flatten().tolist(),
                                     "entropy": entropy.tolist()})
        cases.append(entry)
    print(json.dumps({"producer": f"make_golden_losses.py, torch {torch.__version__}, float64", "cases": cases}))

if __name__ == "__main__":
    main()
