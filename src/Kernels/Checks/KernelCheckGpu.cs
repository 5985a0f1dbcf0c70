using LsKd.Kernels.Gpu;

namespace LsKd.Kernels.Checks;

/// <summary>The ILGPU backend's kernel variants: the GEMM and convolution cases run once per GEMM kernel, K split and
/// direct / implicit-GEMM choice that the accelerator can launch, so `lskd check --device cuda` covers every kernel
/// whatever the shapes' own choice would be. TF32 variants compare with a reference on TF32-rounded inputs.</summary>
public sealed partial class KernelCheck
{
    string _variant = "";
    bool _tf32Inputs;

    sealed record GpuVariant(string Tag, GpuGemmKernel Gemm, GpuConvKernel Conv, int Splits)
    {
        public bool Tf32 => Gemm == GpuGemmKernel.Tf32;
    }

    static IEnumerable<GpuVariant> GemmVariants(IlgpuBackend g)
    {
        foreach (var kernel in new[] { GpuGemmKernel.Simple, GpuGemmKernel.Simt64, GpuGemmKernel.Simt128, GpuGemmKernel.Tf32 })
        {
            if (!g.Supports(kernel)) continue;
            yield return new GpuVariant(IlgpuBackend.KernelName(kernel), kernel, GpuConvKernel.Auto, 0);
            if (kernel != GpuGemmKernel.Simple) yield return new GpuVariant(IlgpuBackend.KernelName(kernel) + ", K in 3", kernel, GpuConvKernel.Auto, 3);
        }
    }

    static IEnumerable<GpuVariant> ConvVariants(IlgpuBackend g)
    {
        yield return new GpuVariant("direct", GpuGemmKernel.Auto, GpuConvKernel.Direct, 0);
        if (!g.Supports(GpuGemmKernel.Simt64)) yield break;
        foreach (var kernel in new[] { GpuGemmKernel.Simt64, GpuGemmKernel.Simt128, GpuGemmKernel.Tf32 })
        {
            if (!g.Supports(kernel)) continue;
            yield return new GpuVariant("implicit-gemm " + IlgpuBackend.KernelName(kernel), kernel, GpuConvKernel.ImplicitGemm, 0);
        }
        yield return new GpuVariant("implicit-gemm simt-64, K in 3", GpuGemmKernel.Simt64, GpuConvKernel.ImplicitGemm, 3);
    }

    /// <summary>Runs the cases once per variant on an ILGPU backend (restoring its settings), once plainly otherwise.</summary>
    void ForEachVariant(string op, Func<IlgpuBackend, IEnumerable<GpuVariant>> variants, Action cases)
    {
        if (backend is not IlgpuBackend g) { cases(); return; }
        var (gemm, conv, splits, tf32) = (g.ForcedGemmKernel, g.ForcedConvKernel, g.ForcedSplits, g.AllowTf32);
        try
        {
            foreach (var v in variants(g))
            {
                g.ForcedGemmKernel = v.Gemm; g.ForcedConvKernel = v.Conv; g.ForcedSplits = v.Splits; g.AllowTf32 = v.Tf32;
                _variant = $" [{v.Tag}]";
                _tf32Inputs = v.Tf32;
                try { cases(); }
                catch (Exception e) { Threw(op, $"[{v.Tag}] ", e); }
            }
        }
        finally
        {
            (g.ForcedGemmKernel, g.ForcedConvKernel, g.ForcedSplits, g.AllowTf32) = (gemm, conv, splits, tf32);
            _variant = "";
            _tf32Inputs = false;
        }
    }

    /// <summary>The reference's view of an input: rounded to TF32 where the variant multiplies in TF32.</summary>
    float[] T(float[] x) => _tf32Inputs ? x.Select(v => IlgpuTiledGemm.Round(v, true)).ToArray() : x;
}
