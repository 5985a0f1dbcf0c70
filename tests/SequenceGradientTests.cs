using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Reference;

namespace LsKd.Tests;

/// <summary>Finite-difference checks of the sequence-model ops (same method and tolerance as the other gradient
/// checks): embedding with a padding row, layer norm with and without the fused residual add, attention for every
/// mask kind, unequal lengths, a fused QKV tensor and dropout, and the token-level losses that skip padding.</summary>
public partial class GradientCheckTests
{
    [TestCaseSource(nameof(GradBackends))]
    public void EmbeddingGrad(string backend)
    {
        int[] ids = [2, 0, 4, 2, 1, 0, 3];   // id 0 is padding: its row must get no gradient
        var be = Backends.Get(backend);
        using var idBuf = be.AllocateInt(ids.Length);
        idBuf.Upload(ids);
        Check(backend, [[5, 3]], t => Weighted(Ops.Embedding(t[0], idBuf, [ids.Length], paddingIndex: 0)), x =>
        {
            // The padding row's values still flow forward; only their gradient is dropped, so the reference holds
            // the padding row's entries constant.
            var y = new double[ids.Length * 3];
            for (int i = 0; i < ids.Length; i++)
                for (int c = 0; c < 3; c++) y[i * 3 + c] = ids[i] == 0 ? Rand(15, 1)[c] : x[0][ids[i] * 3 + c];
            return Weighted(y);
        });
    }

    static IEnumerable<TestCaseData> LayerNormCases() => ForBackends("plain", "residual");

    [TestCaseSource(nameof(LayerNormCases))]
    public void LayerNormGrad(string backend, string kind)
    {
        var spec = new LayerNormSpec(4, 6);
        if (kind == "plain")
        {
            Check(backend, [[4, 6], [6], [6]], t => Weighted(Ops.LayerNorm(t[0], t[1], t[2])),
                x => Weighted(ReferenceOps.LayerNorm(spec, x[0], default, x[1], x[2]).Y), scale: 1.5f);
            return;
        }
        // Both outputs feed the loss: the normalised y and the residual stream s = x + r.
        Check(backend, [[4, 6], [4, 6], [6], [6]], t =>
        {
            var (sum, y) = Ops.AddLayerNorm(t[0], t[1], t[2], t[3]);
            return Ops.Add(Weighted(y), Ops.Scale(Weighted(sum), 0.5f));
        }, x => Weighted(ReferenceOps.LayerNorm(spec, x[0], x[1], x[2], x[3]).Y) + 0.5 * Weighted(x[0].Zip(x[1], (a, b) => a + b).ToArray()), scale: 1.5f);
    }

    static IEnumerable<TestCaseData> AttentionCases() => ForBackends("self", "causal", "cross-padded", "fused-qkv-causal", "dropout");

    [TestCaseSource(nameof(AttentionCases))]
    public void AttentionGrad(string backend, string kind)
    {
        var be = Backends.Get(backend);
        int[]? mask = kind == "cross-padded" ? [1, 1, 1, 0, 0, 1, 1, 1, 1, 1] : null;   // batch 0: 3 real keys of 5
        using var maskBuf = mask == null ? null : be.AllocateInt(mask.Length);
        maskBuf?.Upload(mask);
        if (kind == "fused-qkv-causal")
        {
            int b = 2, h = 2, l = 4, d = 3, md = h * d;
            var spec = new AttentionSpec(b, h, l, l, d, 3 * md, 3 * md, 3 * md, md, 0, md, 2 * md, 0, Causal: true);
            Check(backend, [[b, l, 3 * md]], t => Weighted(Ops.Attention(spec, t[0], t[0], t[0], null)),
                x => Weighted(ReferenceOps.Attention(spec, x[0], x[0], x[0], default).O));
            return;
        }
        var s = kind switch
        {
            "causal" => AttentionSpec.Packed(2, 2, 5, 5, 3, causal: true),
            "cross-padded" => AttentionSpec.Packed(2, 2, 3, 5, 4),
            "dropout" => AttentionSpec.Packed(2, 1, 4, 4, 3, causal: true, dropoutP: 0.3f, dropoutSeed: 7),
            _ => AttentionSpec.Packed(2, 2, 4, 4, 3),
        };
        int[] qs = [s.Batch, s.QueryLength, s.ModelDim], ks = [s.Batch, s.KeyLength, s.ModelDim];
        Check(backend, [qs, ks, ks], t => Weighted(Ops.Attention(s, t[0], t[1], t[2], maskBuf)),
            x => Weighted(ReferenceOps.Attention(s, x[0], x[1], x[2], mask).O), scale: 1.5f);
    }

    static IEnumerable<TestCaseData> TokenLossCases() => ForBackends("label-smoothing", "kd");

    [TestCaseSource(nameof(TokenLossCases))]
    public void TokenLossGrad(string backend, string kind)
    {
        const int Pad = 0, Rows = 6, Cols = 5;
        int[] labels = [3, Pad, 1, 4, Pad, 2];
        int real = labels.Count(l => l != Pad);
        var be = Backends.Get(backend);
        using var lb = be.AllocateInt(Rows);
        lb.Upload(labels);
        var teacher = Rand(Rows * Cols, 55, 2f);
        if (kind == "label-smoothing")
        {
            Check(backend, [[Rows, Cols]], t => Ops.TokenLabelSmoothingCrossEntropy(t[0], lb, 0.1f, Pad, real), x =>
            {
                double sum = 0;
                for (int r = 0; r < Rows; r++)
                    if (labels[r] != Pad) sum += LsRowDouble(x[0].AsSpan(r * Cols, Cols), labels[r], 0.1);
                return sum / real;
            }, scale: 2f);
            return;
        }
        var tt = Tensor.FromArray(be, teacher, [Rows, Cols]);
        Check(backend, [[Rows, Cols]], t => Ops.TokenKdLoss(t[0], tt, lb, new KdConfig(2f), Pad, real), x =>
        {
            double sum = 0;
            for (int r = 0; r < Rows; r++)
                if (labels[r] != Pad) sum += KdRowDouble(x[0].AsSpan(r * Cols, Cols), teacher.AsSpan(r * Cols, Cols), 2.0);
            return sum / real;
        }, scale: 2f);
    }

    /// <summary>-(1 - a) log p_y - a / K sum_k log p_k in float64.</summary>
    static double LsRowDouble(ReadOnlySpan<double> z, int label, double alpha)
    {
        double m = double.NegativeInfinity;
        foreach (var v in z) m = Math.Max(m, v);
        double sum = 0;
        foreach (var v in z) sum += Math.Exp(v - m);
        double lse = m + Math.Log(sum), all = 0;
        foreach (var v in z) all += v - lse;
        return -((1 - alpha) * (z[label] - lse) + alpha / z.Length * all);
    }

    /// <summary>T^2 KL(softmax(t / T) || softmax(s / T)) in float64 from float64 student logits.</summary>
    static double KdRowDouble(ReadOnlySpan<double> s, ReadOnlySpan<float> t, double temp)
    {
        double ms = double.NegativeInfinity, mt = double.NegativeInfinity;
        foreach (var v in s) ms = Math.Max(ms, v);
        foreach (var v in t) mt = Math.Max(mt, v);
        double zs = 0, zt = 0;
        for (int i = 0; i < s.Length; i++) { zs += Math.Exp((s[i] - ms) / temp); zt += Math.Exp((t[i] - mt) / temp); }
        double kl = 0;
        for (int i = 0; i < s.Length; i++)
        {
            double lpt = (t[i] - mt) / temp - Math.Log(zt), lps = (s[i] - ms) / temp - Math.Log(zs);
            kl += Math.Exp(lpt) * (lpt - lps);
        }
        return temp * temp * kl;
    }
}
