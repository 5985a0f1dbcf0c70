using LsKd.Kernels.Reference;

namespace LsKd.Kernels.Checks;

/// <summary>Cases of the sequence-model ops: token-level losses with padding, embeddings, layer norm, attention.</summary>
public sealed partial class KernelCheck
{
    /// <summary>The fused losses over [tokens, vocabulary] rows with padding tokens (label = the ignored id): padding
    /// rows must give exactly zero loss and gradient, the other rows the reference.</summary>
    void TokenLosses()
    {
        const int Pad = 0;
        foreach (var (rows, cols) in small ? new[] { (7, 11) } : new[] { (7, 11), (300, 517) })
        {
            var z = Logits(rows, cols, 700, confident: true);
            var zt = Logits(rows, cols, 701, confident: false);
            var y = Labels(rows, cols, 702);
            for (int r = 0; r < rows; r += 3) y[r] = Pad;   // every third token is padding
            int real = y.Count(v => v != Pad);
            float scale = 1f / real;
            using var dz = Up(z); using var dzt = Up(zt); using var dy = Up(y);
            using var loss = backend.Allocate(rows); using var grad = backend.Allocate(z.Length);
            var rowGrad = new double[cols];
            backend.LabelSmoothingCrossEntropy(dz, dy, loss, grad, rows, cols, 0.1f, scale, ignoreLabel: Pad);
            var el = new double[rows]; var eg = new double[z.Length];
            for (int r = 0; r < rows; r++)
            {
                if (y[r] == Pad) continue;
                el[r] = ReferenceOps.LabelSmoothing(z.AsSpan(r * cols, cols), y[r], 0.1, rowGrad);
                for (int j = 0; j < cols; j++) eg[r * cols + j] = rowGrad[j] * scale;
            }
            Compare("token-losses", $"label smoothing loss {rows}x{cols} padding ignored", loss.ToArray(), el, 1e-5, 1e-5);
            Compare("token-losses", $"label smoothing grad {rows}x{cols} padding ignored", grad.ToArray(), eg, 1e-6 * scale + 1e-9, 1e-4);

            var cfg = new KdConfig(2f, 1f, 0f);
            backend.KdLoss(dz, dzt, dy, loss, grad, rows, cols, cfg, scale, ignoreLabel: Pad);
            Array.Clear(el); Array.Clear(eg);
            for (int r = 0; r < rows; r++)
            {
                if (y[r] == Pad) continue;
                el[r] = ReferenceOps.Kd(z.AsSpan(r * cols, cols), zt.AsSpan(r * cols, cols), y[r], 2, 1, 0, rowGrad);
                for (int j = 0; j < cols; j++) eg[r * cols + j] = rowGrad[j] * scale;
            }
            Compare("token-losses", $"kd loss T=2 {rows}x{cols} padding ignored", loss.ToArray(), el, 1e-5, 1e-4);
            Compare("token-losses", $"kd grad T=2 {rows}x{cols} padding ignored", grad.ToArray(), eg, 1e-6 * scale + 1e-9, 1e-4);
        }
    }

    void EmbeddingCheck()
    {
        foreach (var (count, vocab, dim, pad) in small ? new[] { (9, 5, 7, 0) } : new[] { (9, 5, 7, 0), (1000, 37, 130, 3), (64, 300, 16, -1) })
        {
            var table = Random(vocab * dim, 710);
            var ids = Labels(count, vocab, 711);
            if (pad >= 0) ids[0] = pad;
            var dyv = Random(count * dim, 712);
            var prior = Random(vocab * dim, 713);
            using var dt = Up(table); using var di = Up(ids); using var y = backend.Allocate(count * dim);
            backend.Embedding(dt, di, y, count, vocab, dim);
            Compare("embedding", $"forward {count} tokens vocab {vocab} dim {dim}", y.ToArray(), ReferenceOps.Embedding(table, ids, dim), 0, 0);
            using var g = Up(dyv); using var dTable = Up(prior);
            backend.EmbeddingBackward(di, g, dTable, count, vocab, dim, pad, accumulate: true);
            var expected = ReferenceOps.EmbeddingBackward(ids, dyv, vocab, dim, pad);
            for (int i = 0; i < expected.Length; i++) expected[i] += prior[i];
            Compare("embedding", $"backward (accumulate, padding {pad}) {count} tokens vocab {vocab} dim {dim}", dTable.ToArray(), expected, 1e-5, 1e-5);
        }
    }

    void LayerNormCheck()
    {
        foreach (var (rows, dim) in small ? new[] { (3, 7), (2, 33) } : new[] { (3, 7), (2, 33), (257, 256), (64, 1000) })
            foreach (bool withResidual in new[] { false, true })
            {
                var spec = new LayerNormSpec(rows, dim);
                var x = Random(rows * dim, 720, 2f, 0.5f);
                var r = Random(rows * dim, 721);
                var gamma = Random(dim, 722, 0.5f, 1f); var beta = Random(dim, 723);
                var dyv = Random(rows * dim, 724);
                using var dx = Up(x); using var dr = Up(r); using var dg = Up(gamma); using var db = Up(beta);
                using var y = backend.Allocate(rows * dim); using var sum = backend.Allocate(rows * dim);
                using var mean = backend.Allocate(rows); using var inv = backend.Allocate(rows);
                backend.LayerNorm(spec, dx, withResidual ? dr : null, withResidual ? sum : null, dg, db, y, mean, inv);
                var (ey, em, ei) = ReferenceOps.LayerNorm(spec, x, withResidual ? r : default, gamma, beta);
                string name = $"{rows}x{dim}{(withResidual ? " + residual" : "")}";
                Compare("layernorm", "forward " + name, y.ToArray(), ey, 1e-5, 1e-4);
                Compare("layernorm", "mean " + name, mean.ToArray(), em, 1e-5, 1e-5);
                Compare("layernorm", "1/std " + name, inv.ToArray(), ei, 1e-5, 1e-4);
                var s = withResidual ? x.Zip(r, (a, b) => a + b).ToArray() : x;
                if (withResidual) Compare("layernorm", "residual sum " + name, sum.ToArray(), D(s), 1e-6, 1e-6);
                using var input = Up(s); using var g = Up(dyv); using var gx = Up(Random(rows * dim, 725));
                using var gg = backend.Allocate(dim); using var gb = backend.Allocate(dim);
                var prior = gx.ToArray();
                backend.LayerNormBackward(spec, input, g, dg, mean, inv, gx, gg, gb, accumulate: true);
                var (edx, edg, edb) = ReferenceOps.LayerNormBackward(spec, s, dyv, gamma);
                for (int i = 0; i < edx.Length; i++) edx[i] += prior[i];
                Compare("layernorm", "input grad (accumulate) " + name, gx.ToArray(), edx, 1e-4, 1e-4);
                Compare("layernorm", "gamma grad " + name, gg.ToArray(), edg, 1e-4 * rows, 1e-4);
                Compare("layernorm", "beta grad " + name, gb.ToArray(), edb, 1e-5 * rows, 1e-5);
            }
    }

    /// <summary>Attention cases: every mask kind, lengths 1, 7, 63 and 65, unequal query and key lengths, a fused QKV
    /// layout (strided views with offsets), dropout, and a batch row whose keys are all padding.</summary>
    void AttentionCheck()
    {
        var cases = new List<(string Name, AttentionSpec Spec, bool Mask)>
        {
            ("self L=1", AttentionSpec.Packed(2, 2, 1, 1, 8), false),
            ("self L=7 causal", AttentionSpec.Packed(2, 3, 7, 7, 5, causal: true), false),
            ("cross Lq=7 Lk=5 padded", AttentionSpec.Packed(3, 2, 7, 5, 16), true),
            ("cross Lq=3 Lk=9 causal padded", AttentionSpec.Packed(2, 2, 3, 9, 4) with { Causal = true }, true),
            ("dropout 0.2 causal", AttentionSpec.Packed(2, 2, 6, 6, 8, causal: true, dropoutP: 0.2f, dropoutSeed: 99), true),
        };
        // Fused QKV: one [B, L, 3 * H * d] buffer, Q, K and V at offsets 0, H*d, 2*H*d with row stride 3*H*d.
        {
            int b = 2, h = 2, l = 9, d = 6, md = h * d;
            cases.Add(("fused QKV L=9 causal padded", new AttentionSpec(b, h, l, l, d, 3 * md, 3 * md, 3 * md, md, 0, md, 2 * md, 0, Causal: true), true));
        }
        // An incremental decoder's step: one query against a key/value cache of capacity 8 holding 5 keys.
        cases.Add(("kv cache Lq=1 Lk=5 of 8", new AttentionSpec(2, 2, 1, 5, 4, 8, 8, 8, 8, Causal: true, KBatchStride: 64, VBatchStride: 64), false));
        if (!small)
        {
            cases.Add(("self L=63 causal", AttentionSpec.Packed(2, 2, 63, 63, 32, causal: true), false));
            cases.Add(("cross Lq=65 Lk=63 padded", AttentionSpec.Packed(2, 4, 65, 63, 32), true));
            cases.Add(("self L=65 d=64 padded", AttentionSpec.Packed(2, 2, 65, 65, 64), true));
        }
        int seed = 730;
        foreach (var (name, spec, withMask) in cases)
        {
            var q = Random((int)spec.QExtent, seed++, 1.5f);
            var k = Random((int)spec.KExtent, seed++, 1.5f);
            var v = Random((int)spec.VExtent, seed++);
            var dO = Random((int)spec.OExtent, seed++);
            int[]? mask = null;
            if (withMask)
            {
                var rng = new Random(seed++);
                mask = new int[spec.Batch * spec.KeyLength];
                for (int bi = 0; bi < spec.Batch; bi++)
                {
                    int len = bi == 1 ? 0 : 1 + rng.Next(spec.KeyLength);   // batch row 1: every key is padding
                    for (int j = 0; j < spec.KeyLength; j++) mask[bi * spec.KeyLength + j] = j < len ? 1 : 0;
                }
            }
            using var dq = Up(q); using var dk = Up(k); using var dv = Up(v); using var dm = mask == null ? null : Up(mask);
            using var o = backend.Allocate((int)spec.OExtent); using var lse = backend.Allocate(spec.LseLength);
            backend.Fill(o, 0, (int)spec.OExtent, 0f);
            backend.Attention(spec, dq, dk, dv, dm, o, lse);
            var (eo, refLse) = ReferenceOps.Attention(spec, q, k, v, mask);
            Compare("attention", $"forward {name} {spec}", o.ToArray(), eo, 1e-5, 1e-4);
            var lseGot = lse.ToArray();
            var lseFinite = refLse.Select(x => double.IsPositiveInfinity(x) ? double.NaN : x).ToArray();
            Compare("attention", $"log-sum-exp {name}", lseGot, lseFinite, 1e-5, 1e-5);
            int emptyRows = refLse.Count(double.IsPositiveInfinity), emptyGot = lseGot.Count(float.IsPositiveInfinity);
            _results.Add(new CheckResult("attention", $"rows with no key {name}", emptyRows == emptyGot, Math.Abs(emptyRows - emptyGot), -1, emptyGot, emptyRows, 0, 0,
                emptyRows == emptyGot ? 0 : 1, refLse.Length));

            using var g = Up(dO);
            using var gq = backend.Allocate((int)spec.QExtent); using var gk = backend.Allocate((int)spec.KExtent); using var gv = backend.Allocate((int)spec.VExtent);
            foreach (var buf in new[] { gq, gk, gv }) backend.Fill(buf, 0, buf.Length, 0f);
            backend.AttentionBackward(spec, dq, dk, dv, dm, o, lse, g, gq, gk, gv);
            var (edq, edk, edv) = ReferenceOps.AttentionBackward(spec, q, k, v, mask, dO);
            double tol = 2e-5 * Math.Sqrt(spec.KeyLength) + 1e-5;
            Compare("attention", $"dQ {name}", gq.ToArray(), edq, tol, 1e-3);
            Compare("attention", $"dK {name}", gk.ToArray(), edk, tol, 1e-3);
            Compare("attention", $"dV {name}", gv.ToArray(), edv, tol, 1e-3);
        }
    }
}
