using static LsKd.Kernels.Validation;

namespace LsKd.Kernels;

/// <summary>The sequence-model ops (embeddings, layer norm, attention): checks, then the backend's kernel.</summary>
public abstract partial class BackendBase
{
    public void Embedding(DeviceBuffer<float> table, DeviceBuffer<int> ids, DeviceBuffer<float> y, int count, int vocab, int dim)
    {
        using var profile = OpProfiler.Scope(this, "Embedding");
        NonNegative(count, "count"); Positive(vocab, "vocab"); Positive(dim, "dim");
        Fits(this, table, (long)vocab * dim, "table"); Fits(this, y, (long)count * dim, "y");
        CheckTokens(ids, count, vocab);
        if (count > 0) EmbeddingCore(table, ids, y, count, vocab, dim);
    }

    public void EmbeddingBackward(DeviceBuffer<int> ids, DeviceBuffer<float> dy, DeviceBuffer<float> dTable, int count, int vocab, int dim, int paddingIndex, bool accumulate)
    {
        using var profile = OpProfiler.Scope(this, "EmbeddingBackward");
        NonNegative(count, "count"); Positive(vocab, "vocab"); Positive(dim, "dim");
        if (paddingIndex >= vocab) throw new ArgumentOutOfRangeException(nameof(paddingIndex), paddingIndex, $"padding index {paddingIndex} is outside the vocabulary of {vocab} (use -1 for none)");
        Fits(this, dy, (long)count * dim, "dy"); Fits(this, dTable, (long)vocab * dim, "dTable");
        CheckTokens(ids, count, vocab);
        EmbeddingBackwardCore(ids, dy, dTable, count, vocab, dim, paddingIndex, accumulate);
    }

    public void LayerNorm(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float>? residual, DeviceBuffer<float>? sum, DeviceBuffer<float> gamma,
        DeviceBuffer<float> beta, DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd)
    {
        using var profile = OpProfiler.Scope(this, residual == null ? "LayerNorm" : "LayerNorm + residual");
        CheckLayerNorm(spec);
        Fits(this, x, spec.Size, "x"); Fits(this, y, spec.Size, "y");
        if ((residual == null) != (sum == null)) throw new ArgumentException("layer norm: a residual needs a sum buffer and a sum buffer a residual", nameof(sum));
        if (residual != null) { Fits(this, residual, spec.Size, "residual"); Fits(this, sum!, spec.Size, "sum"); }
        Fits(this, gamma, spec.Dim, "gamma"); Fits(this, beta, spec.Dim, "beta");
        Fits(this, saveMean, spec.Rows, "saveMean"); Fits(this, saveInvStd, spec.Rows, "saveInvStd");
        if (spec.Rows > 0) LayerNormCore(spec, x, residual, sum, gamma, beta, y, saveMean, saveInvStd);
    }

    public void LayerNormBackward(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma, DeviceBuffer<float> saveMean,
        DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool accumulate)
    {
        using var profile = OpProfiler.Scope(this, "LayerNormBackward");
        CheckLayerNorm(spec);
        Fits(this, x, spec.Size, "x"); Fits(this, dy, spec.Size, "dy"); Fits(this, dx, spec.Size, "dx");
        Fits(this, gamma, spec.Dim, "gamma"); Fits(this, dGamma, spec.Dim, "dGamma"); Fits(this, dBeta, spec.Dim, "dBeta");
        Fits(this, saveMean, spec.Rows, "saveMean"); Fits(this, saveInvStd, spec.Rows, "saveInvStd");
        if (ReferenceEquals(dx, x) || ReferenceEquals(dx, dy)) throw new ArgumentException("layer-norm backward: dx cannot alias x or dy (both are read after dx is written)", nameof(dx));
        LayerNormBackwardCore(spec, x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, accumulate);
    }

    public void Attention(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse)
    {
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? $"Attention Lq={spec.QueryLength} Lk={spec.KeyLength} d={spec.HeadDim}" : "");
        CheckAttention(spec, q, k, v, keyMask, o, lse);
        if (spec.Batch > 0) AttentionCore(spec, q, k, v, keyMask, o, lse);
    }

    public void AttentionBackward(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse, DeviceBuffer<float> dO, DeviceBuffer<float> dq, DeviceBuffer<float> dk, DeviceBuffer<float> dv)
    {
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? $"AttentionBackward Lq={spec.QueryLength} Lk={spec.KeyLength} d={spec.HeadDim}" : "");
        CheckAttention(spec, q, k, v, keyMask, o, lse);
        Fits(this, dO, spec.OExtent, "dO"); Fits(this, dq, spec.QExtent, "dq"); Fits(this, dk, spec.KExtent, "dk"); Fits(this, dv, spec.VExtent, "dv");
        if (ReferenceEquals(dq, q) || ReferenceEquals(dk, k) || ReferenceEquals(dv, v) || ReferenceEquals(dq, dO) || ReferenceEquals(dk, dO) || ReferenceEquals(dv, dO))
            throw new ArgumentException("attention backward cannot write a gradient over an input it still reads (dq/dk/dv alias q/k/v or dO)");
        if (spec.Batch > 0) AttentionBackwardCore(spec, q, k, v, keyMask, o, lse, dO, dq, dk, dv);
    }

    void CheckAttention(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse)
    {
        spec.Validate();
        if (spec.Batch == 0) return;
        Fits(this, q, spec.QExtent, $"q (batch {spec.Batch} x query length {spec.QueryLength} rows of stride {spec.QRowStride})");
        Fits(this, k, spec.KExtent, $"k (batch {spec.Batch} x key length {spec.KeyLength} rows of stride {spec.KRowStride})");
        Fits(this, v, spec.VExtent, $"v (batch {spec.Batch} x key length {spec.KeyLength} rows of stride {spec.VRowStride})");
        Fits(this, o, spec.OExtent, $"o (batch {spec.Batch} x query length {spec.QueryLength} rows of stride {spec.ORowStride})");
        Fits(this, lse, spec.LseLength, $"lse [batch {spec.Batch}, heads {spec.Heads}, query length {spec.QueryLength}]");
        if (keyMask != null) Fits(this, keyMask, (long)spec.Batch * spec.KeyLength, $"key mask [batch {spec.Batch}, key length {spec.KeyLength}]");
        if (ReferenceEquals(o, q) || ReferenceEquals(o, k) || ReferenceEquals(o, v))
            throw new ArgumentException("attention output o cannot alias q, k or v", nameof(o));
    }

    static void CheckLayerNorm(in LayerNormSpec s)
    {
        NonNegative(s.Rows, "rows"); Positive(s.Dim, "dim");
        if (!(s.Epsilon > 0f)) throw new ArgumentOutOfRangeException("epsilon", s.Epsilon, $"layer-norm epsilon must be > 0, got {s.Epsilon}");
    }

    /// <summary>Token ids index a table: an id outside the vocabulary would read or write outside it.</summary>
    void CheckTokens(DeviceBuffer<int> ids, int count, int vocab)
    {
        Fits(this, ids, count, "ids");
        var host = ReadInts(ids, count);
        for (int i = 0; i < count; i++)
            if ((uint)host[i] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(ids), host[i], $"token id ids[{i}] = {host[i]} is outside the vocabulary [0, {vocab})");
    }

    protected abstract void EmbeddingCore(DeviceBuffer<float> table, DeviceBuffer<int> ids, DeviceBuffer<float> y, int count, int vocab, int dim);
    protected abstract void EmbeddingBackwardCore(DeviceBuffer<int> ids, DeviceBuffer<float> dy, DeviceBuffer<float> dTable, int count, int vocab, int dim, int paddingIndex, bool accumulate);
    protected abstract void LayerNormCore(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float>? residual, DeviceBuffer<float>? sum, DeviceBuffer<float> gamma,
        DeviceBuffer<float> beta, DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd);
    protected abstract void LayerNormBackwardCore(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma, DeviceBuffer<float> saveMean,
        DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool accumulate);
    protected abstract void AttentionCore(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse);
    protected abstract void AttentionBackwardCore(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse, DeviceBuffer<float> dO, DeviceBuffer<float> dq, DeviceBuffer<float> dk, DeviceBuffer<float> dv);
}
