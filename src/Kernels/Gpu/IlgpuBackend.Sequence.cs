using ILGPU;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;
using IView = ILGPU.Runtime.ArrayView1D<int, ILGPU.Stride1D.Dense>;

/// <summary>The sequence ops of the ILGPU backend (kernels in <see cref="IlgpuSequenceKernels"/>).</summary>
public sealed partial class IlgpuBackend
{
    Action<Index1D, FView, IView, FView, int>? _embedding;
    Action<Index1D, IView, FView, FView, int, int, int>? _embeddingBackward;
    Action<KernelConfig, FView, FView, FView, FView, FView, FView, FView, FView, int, float, int>? _layerNorm;
    Action<KernelConfig, FView, FView, FView, FView, FView, FView, int, int>? _layerNormBackward;
    Action<Index1D, FView, FView, FView, FView, FView, FView, int, int>? _layerNormParams;
    Action<Index1D, FView, FView, FView, IView, FView, FView, AttnParams>? _attention;
    Action<Index1D, FView, FView, FView, AttnParams>? _attentionRowDot;
    Action<Index1D, FView, FView, FView, IView, FView, FView, FView, FView, AttnParams>? _attentionQuery;
    Action<Index1D, FView, FView, FView, IView, FView, FView, FView, FView, FView, AttnParams>? _attentionKeyValue;

    protected override void EmbeddingCore(DeviceBuffer<float> table, DeviceBuffer<int> ids, DeviceBuffer<float> y, int count, int vocab, int dim) =>
        Auto(ref _embedding, IlgpuSequenceKernels.Embedding)(count * dim, V(table), V(ids), V(y), dim);

    protected override void EmbeddingBackwardCore(DeviceBuffer<int> ids, DeviceBuffer<float> dy, DeviceBuffer<float> dTable, int count, int vocab, int dim, int paddingIndex, bool accumulate)
    {
        if (!accumulate) FillCore(dTable, 0, vocab * dim, 0f);
        if (count == 0) return;
        (_embeddingBackward ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, IView, FView, FView, int, int, int>(IlgpuSequenceKernels.EmbeddingBackward))
            (dim, V(ids), V(dy), V(dTable), count, dim, paddingIndex);
    }

    protected override void LayerNormCore(in LayerNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float>? residual, DeviceBuffer<float>? sum, DeviceBuffer<float> gamma,
        DeviceBuffer<float> beta, DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd) =>
        (_layerNorm ??= Accelerator.LoadStreamKernel<FView, FView, FView, FView, FView, FView, FView, FView, int, float, int>(IlgpuSequenceKernels.LayerNorm))
            (RowConfig(s.Rows), V(x), V(residual ?? x), V(sum ?? y), V(gamma), V(beta), V(y), V(saveMean), V(saveInvStd), s.Dim, s.Epsilon, residual != null ? 1 : 0);

    protected override void LayerNormBackwardCore(in LayerNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma, DeviceBuffer<float> saveMean,
        DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool accumulate)
    {
        if (s.Rows > 0)
            (_layerNormBackward ??= Accelerator.LoadStreamKernel<FView, FView, FView, FView, FView, FView, int, int>(IlgpuSequenceKernels.LayerNormBackward))
                (RowConfig(s.Rows), V(x), V(dy), V(gamma), V(saveMean), V(saveInvStd), V(dx), s.Dim, accumulate ? 1 : 0);
        (_layerNormParams ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, FView, FView, FView, int, int>(IlgpuSequenceKernels.LayerNormParamGrads))
            (s.Dim, V(x), V(dy), V(saveMean), V(saveInvStd), V(dGamma), V(dBeta), s.Rows, s.Dim);
    }

    protected override void AttentionCore(in AttentionSpec s, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse)
    {
        var p = AttnParams.From(s, keyMask != null);
        (_attention ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, IView, FView, FView, AttnParams>(IlgpuSequenceKernels.AttentionForward))
            (s.LseLength * s.HeadDim, V(q), V(k), V(v), V(keyMask), V(o), V(lse), p);
    }

    protected override void AttentionBackwardCore(in AttentionSpec s, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse, DeviceBuffer<float> dO, DeviceBuffer<float> dq, DeviceBuffer<float> dk, DeviceBuffer<float> dv)
    {
        var p = AttnParams.From(s, keyMask != null);
        using var rowDot = Allocate(s.LseLength);
        (_attentionRowDot ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, AttnParams>(IlgpuSequenceKernels.AttentionRowDot))
            (s.LseLength, V(o), V(dO), V(rowDot), p);
        (_attentionQuery ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, IView, FView, FView, FView, FView, AttnParams>(IlgpuSequenceKernels.AttentionBackwardQuery))
            (s.LseLength * s.HeadDim, V(q), V(k), V(v), V(keyMask), V(lse), V(dO), V(rowDot), V(dq), p);
        (_attentionKeyValue ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, IView, FView, FView, FView, FView, FView, AttnParams>(IlgpuSequenceKernels.AttentionBackwardKeyValue))
            (s.Batch * s.Heads * s.KeyLength * s.HeadDim, V(q), V(k), V(v), V(keyMask), V(lse), V(dO), V(rowDot), V(dk), V(dv), p);
        Accelerator.Synchronize();   // rowDot is released when this method returns
    }
}
