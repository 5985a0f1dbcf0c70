#!/usr/bin/python3
"""Peer for `lskd bench transformer`: the same pre-LN encoder-decoder Transformer in PyTorch (nn.TransformerEncoderLayer
and nn.TransformerDecoderLayer with norm_first=True, final layer norms, token embeddings scaled by sqrt(d) plus
sinusoidal positions, output projection tied to the target embedding), trained with token-level label-smoothed
cross-entropy (ignore_index = PAD), Adam(beta2 = 0.98) and global-norm clipping; and greedy decoding of the same model
(the whole prefix re-run each step: PyTorch's modules have no key/value cache).
The batch is built by the same rule as LsKd's: pair i has a source of 20 + (37 i mod 41) tokens and a target of
20 + (53 i mod 41) tokens. Prints JSON lines."""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F
import peer_device

PAD, BOS, EOS = 0, 1, 2

class Model(nn.Module):
    def __init__(self, vocab, d, heads, layers, ffn, max_len):
        super().__init__()
        self.d = d
        self.src = nn.Embedding(vocab, d, padding_idx=PAD)
        self.tgt = nn.Embedding(vocab, d, padding_idx=PAD)
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.pow(10000.0, torch.arange(0, d, 2) / d)
        pe = torch.zeros(max_len, d)
        pe[:, 0::2] = torch.sin(pos / div)
        pe[:, 1::2] = torch.cos(pos / div)
        self.register_buffer("pe", pe)
        enc = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.1, batch_first=True, norm_first=True)
        dec = nn.TransformerDecoderLayer(d, heads, ffn, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, layers, norm=nn.LayerNorm(d))

    def encode(self, src):
        x = self.src(src) * math.sqrt(self.d) + self.pe[: src.shape[1]]
        return self.encoder(x, src_key_padding_mask=src == PAD)

    def decode(self, memory, src, tin):
        y = self.tgt(tin) * math.sqrt(self.d) + self.pe[: tin.shape[1]]
        causal = torch.triu(torch.full((tin.shape[1], tin.shape[1]), float("-inf")), diagonal=1).to(tin.device)
        h = self.decoder(y, memory, tgt_mask=causal, memory_key_padding_mask=src == PAD)
        return h @ self.tgt.weight.t()

def batch(n, vocab, g):
    ls = [20 + (37 * i) % 41 for i in range(n)]
    lt = [20 + (53 * i) % 41 for i in range(n)]
    src = torch.zeros(n, max(ls) + 1, dtype=torch.long)
    tin = torch.zeros(n, max(lt) + 1, dtype=torch.long)
    tout = torch.zeros(n, max(lt) + 1, dtype=torch.long)
    for i in range(n):
        s = torch.randint(3, vocab, (ls[i],), generator=g)
        t = torch.randint(3, vocab, (lt[i],), generator=g)
        src[i, : ls[i]] = s; src[i, ls[i]] = EOS
        tin[i, 0] = BOS; tin[i, 1 : lt[i] + 1] = t
        tout[i, : lt[i]] = t; tout[i, lt[i]] = EOS
    return src, tin, tout

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=200)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--decode-sentences", type=int, default=16)
    peer_device.add_argument(ap)
    a = ap.parse_args()
    dev = peer_device.setup(a, a.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Model(a.vocab, a.d_model, a.heads, a.layers, a.ffn, 256).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-9)
    src, tin, tout = (t.to(dev) for t in batch(a.batch, a.vocab, g))
    tokens = int((tout != PAD).sum())

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model.decode(model.encode(src), src, tin)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), tout.reshape(-1), ignore_index=PAD, label_smoothing=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    model.train()
    for _ in range(2):
        step()
    peer_device.sync(dev)
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter(); step(); peer_device.sync(dev); times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"kind": "train", "parameters": params, "target_tokens": tokens, "step_ms": med * 1e3, "tokens_per_s": tokens / med,
                      "device": a.device, **peer_device.facts()}), flush=True)

    # Greedy decoding of the first sentences of the batch, a * |source| + b = 1.2 |s| + 10 tokens at most.
    model.eval()
    n = a.decode_sentences
    s = src[:n]
    lengths = [(20 + (37 * i) % 41) for i in range(n)]
    limit = max(int(1.2 * l) + 10 for l in lengths)
    with torch.no_grad():
        t0 = time.perf_counter()
        memory = model.encode(s)
        out = torch.full((n, 1), BOS, dtype=torch.long, device=dev)
        for _ in range(limit):
            logits = model.decode(memory, s, out)[:, -1]
            out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
        peer_device.sync(dev)
        seconds = time.perf_counter() - t0
    print(json.dumps({"kind": "greedy", "sentences": n, "steps": limit, "seconds": seconds, "sentences_per_s": n / seconds}), flush=True)

if __name__ == "__main__":
    main()
