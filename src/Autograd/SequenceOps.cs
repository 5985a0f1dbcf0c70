using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>Sequence-model ops: embedding lookup, layer norm (optionally fused with the residual add before it),
/// fused attention on strided views, and token-level losses that skip padding. Each records one tape node whose
/// backward calls the matching backend kernel.</summary>
public static partial class Ops
{
    /// <summary>Rows of <paramref name="table"/> [vocab, dim] for the token ids: [ids.Length..., dim] given as
    /// <paramref name="shape"/> (its product times dim must match). The padding row gets no gradient.</summary>
    public static Tensor Embedding(Tensor table, DeviceBuffer<int> ids, int[] shape, int paddingIndex = -1, string layer = "embedding")
    {
        if (table.Rank != 2) throw new ArgumentException($"{layer}: table must be [vocab, dim], got {Tensor.ShapeString(table.Shape)}");
        int vocab = table.Shape[0], dim = table.Shape[1], count = Tensor.ShapeSize(shape);
        var y = Output(table, [.. shape, dim], table);
        table.Backend.Embedding(table.Buffer, ids, y.Buffer, count, vocab, dim);
        T.Record(y, [table], o => Accumulate(table, (g, acc) => table.Backend.EmbeddingBackward(ids, o.Grad!, g, count, vocab, dim, paddingIndex, acc)));
        return y;
    }

    /// <summary>Layer norm over the last axis of x.</summary>
    public static Tensor LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon = 1e-5f, string layer = "layernorm") =>
        LayerNormCore(x, null, gamma, beta, epsilon, layer).Y;

    /// <summary>s = x + residual and y = LayerNorm(s) in one pass; returns both (s is the next residual stream).</summary>
    public static (Tensor Sum, Tensor Y) AddLayerNorm(Tensor x, Tensor residual, Tensor gamma, Tensor beta, float epsilon = 1e-5f, string layer = "layernorm")
    {
        if (!x.Shape.SequenceEqual(residual.Shape))
            throw new ArgumentException($"{layer}: input {Tensor.ShapeString(x.Shape)} and residual {Tensor.ShapeString(residual.Shape)} differ in shape");
        var (sum, y) = LayerNormCore(x, residual, gamma, beta, epsilon, layer);
        return (sum!, y);
    }

    static (Tensor? Sum, Tensor Y) LayerNormCore(Tensor x, Tensor? residual, Tensor gamma, Tensor beta, float epsilon, string layer)
    {
        int dim = x.Shape[^1];
        if (gamma.Size != dim || beta.Size != dim)
            throw new ArgumentException($"{layer}: gamma and beta must have {dim} values (the last axis of {Tensor.ShapeString(x.Shape)}), got {gamma.Size} and {beta.Size}");
        var spec = new LayerNormSpec(x.Size / dim, dim, epsilon);
        var be = x.Backend;
        Tensor? sum = residual == null ? null : Output(x, x.Shape, x, residual);
        var input = sum ?? x;
        var y = Output(x, x.Shape, input, gamma, beta);
        var mean = T.NewTransient(be, [spec.Rows], false);
        var invStd = T.NewTransient(be, [spec.Rows], false);
        be.LayerNorm(spec, x.Buffer, residual?.Buffer, sum?.Buffer, gamma.Buffer, beta.Buffer, y.Buffer, mean.Buffer, invStd.Buffer);
        if (sum != null)
            T.Record(sum, [x, residual!], o => { AccumulateFrom(x, o.Grad!); AccumulateFrom(residual!, o.Grad!); });
        T.Record(y, [input, gamma, beta], o =>
        {
            var dGamma = T.Pool.Rent(be, dim);
            var dBeta = T.Pool.Rent(be, dim);
            if (input.RequiresGrad)
                Accumulate(input, (g, acc) => be.LayerNormBackward(spec, input.Buffer, o.Grad!, gamma.Buffer, mean.Buffer, invStd.Buffer, g, dGamma, dBeta, acc));
            else
            {
                var scratch = T.Pool.Rent(be, input.Size);
                be.LayerNormBackward(spec, input.Buffer, o.Grad!, gamma.Buffer, mean.Buffer, invStd.Buffer, scratch, dGamma, dBeta, false);
                T.Pool.Return(scratch);
            }
            AccumulateFrom(gamma, dGamma);
            AccumulateFrom(beta, dBeta);
            T.Pool.Return(dGamma); T.Pool.Return(dBeta);
        });
        return (sum, y);
    }

    /// <summary>Fused attention on the views that <paramref name="spec"/> describes in q, k and v (which may be one
    /// tensor, e.g. a fused QKV projection). Returns O as [Batch, QueryLength, Heads * HeadDim] (spec's O view must be
    /// that packed layout). keyMask [Batch, KeyLength]: nonzero = a real key.</summary>
    public static Tensor Attention(in AttentionSpec spec, Tensor q, Tensor k, Tensor v, DeviceBuffer<int>? keyMask, string layer = "attention")
    {
        var s = spec;
        if (s.OOffset != 0 || s.ORowStride != s.ModelDim)
            throw new ArgumentException($"{layer}: the output view must be packed [batch, query length, heads x head dim]");
        CheckSameBackend(q, k, layer); CheckSameBackend(q, v, layer);
        var be = q.Backend;
        var o = Output(q, [s.Batch, s.QueryLength, s.ModelDim], q, k, v);
        var lse = T.NewTransient(be, [s.LseLength], false);
        be.Attention(s, q.Buffer, k.Buffer, v.Buffer, keyMask, o.Buffer, lse.Buffer);
        FlopCounter.Add(s.Flops);
        T.Record(o, [q, k, v], og =>
        {
            // The kernel writes only the head slices of dQ, dK, dV: scratch gradients start at zero, and inputs that are
            // one tensor share one scratch (their slices are disjoint).
            var distinct = new List<Tensor>();
            foreach (var t in new[] { q, k, v }) if (!distinct.Any(d => ReferenceEquals(d, t))) distinct.Add(t);
            var scratch = distinct.Select(t => { var b = T.Pool.Rent(be, t.Size); be.Fill(b, 0, t.Size, 0f); return b; }).ToList();
            DeviceBuffer<float> Grad(Tensor t) => scratch[distinct.FindIndex(d => ReferenceEquals(d, t))];
            be.AttentionBackward(s, q.Buffer, k.Buffer, v.Buffer, keyMask, o.Buffer, lse.Buffer, og.Grad!, Grad(q), Grad(k), Grad(v));
            for (int i = 0; i < distinct.Count; i++) { AccumulateFrom(distinct[i], scratch[i]); T.Pool.Return(scratch[i]); }
        });
        return o;
    }

    /// <summary>Token-level label-smoothing cross-entropy: rows whose label is <paramref name="ignoreLabel"/> (padding)
    /// are skipped, and the loss is the mean over the real tokens (<paramref name="realTokens"/> of them).</summary>
    public static Tensor TokenLabelSmoothingCrossEntropy(Tensor logits, DeviceBuffer<int> labels, float alpha, int ignoreLabel, int realTokens) =>
        FusedLabelSmoothing(logits, labels, alpha, ignoreLabel, realTokens, "token label-smoothing cross-entropy");

    /// <summary>Token-level KD loss (word-level distillation): padding rows skipped, mean over the real tokens.</summary>
    public static Tensor TokenKdLoss(Tensor student, Tensor teacher, DeviceBuffer<int> labels, KdConfig config, int ignoreLabel, int realTokens) =>
        FusedKd(student, teacher, labels, config, ignoreLabel, realTokens, "token kd-loss");
}
