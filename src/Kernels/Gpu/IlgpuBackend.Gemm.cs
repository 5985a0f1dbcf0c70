using ILGPU;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

/// <summary>The GEMM kernels the ILGPU backend can run. Simple: the 16 x 16 shared-memory tile, one output per
/// thread (tiny products, groups under 64 threads). Simt64 / Simt128: the register-tiled kernel with 8 x 8 outputs
/// per thread. Tf32: tensor cores, only when the caller allows TF32.</summary>
public enum GpuGemmKernel { Auto, Simple, Simt64, Simt128, Tf32 }

/// <summary>How the ILGPU backend runs a (non-depthwise) convolution pass: the direct kernels, or an implicit GEMM on
/// the tiled GEMM kernels.</summary>
public enum GpuConvKernel { Auto, Direct, ImplicitGemm }

public sealed partial class IlgpuBackend
{
    Action<KernelConfig, DenseOperands, TileParams>? _denseSimt, _denseTf32;
    Action<KernelConfig, ConvForwardOperands, TileParams>? _convForwardSimt, _convForwardTf32;
    Action<KernelConfig, ConvInputGradOperands, TileParams>? _convInputSimt, _convInputTf32;
    Action<KernelConfig, ConvWeightGradOperands, TileParams>? _convWeightSimt, _convWeightTf32;
    Action<KernelConfig, DenseOperands, int, int, int>? _scaleOutput;

    /// <summary>Lets GEMMs and implicit-GEMM convolutions use TF32 tensor cores (inputs rounded to 10 mantissa bits,
    /// fp32 sums). Off by default, as PyTorch's matmul default is fp32.</summary>
    public bool AllowTf32 { get; set; }

    /// <summary>Tiled kernels load their operands element by element even where 16-byte vectors are allowed (tests
    /// compare the two paths).</summary>
    public bool NoVectorLoads { get; set; }

    /// <summary>Forces one GEMM kernel wherever it can run (benchmarks, checks); Auto picks per shape.</summary>
    public GpuGemmKernel ForcedGemmKernel { get; set; }

    /// <summary>Forces direct or implicit-GEMM convolutions (depthwise always stays direct); Auto picks per shape.</summary>
    public GpuConvKernel ForcedConvKernel { get; set; }

    /// <summary>Forces the number of K chunks of a tiled GEMM (0: chosen to fill the multiprocessors).</summary>
    public int ForcedSplits { get; set; }

    public static readonly string[] GemmKernelNames = ["simple", "simt-64", "simt-128", "tf32"];
    public static readonly string[] ConvKernelNames = ["direct", "implicit-gemm"];

    public static string KernelName(GpuGemmKernel k) => k == GpuGemmKernel.Auto ? "auto" : GemmKernelNames[(int)k - 1];
    public static string KernelName(GpuConvKernel k) => k == GpuConvKernel.Auto ? "auto" : ConvKernelNames[(int)k - 1];

    public static bool TryParseGemmKernel(string text, out GpuGemmKernel kernel)
    {
        int i = Array.IndexOf(GemmKernelNames, text.Trim().ToLowerInvariant());
        kernel = i < 0 ? GpuGemmKernel.Auto : (GpuGemmKernel)(i + 1);
        return i >= 0;
    }

    public static bool TryParseConvKernel(string text, out GpuConvKernel kernel)
    {
        int i = Array.IndexOf(ConvKernelNames, text.Trim().ToLowerInvariant());
        kernel = i < 0 ? GpuConvKernel.Auto : (GpuConvKernel)(i + 1);
        return i >= 0;
    }

    /// <summary>Whether this accelerator can launch a kernel: the register-tiled ones need 64 or 256 threads per group,
    /// TF32 needs 32-lane warps (mma.sync is a warp instruction; off CUDA it is emulated per lane).</summary>
    public bool Supports(GpuGemmKernel kernel)
    {
        int group = Accelerator.MaxNumThreadsPerGroup;
        return kernel switch
        {
            GpuGemmKernel.Simt64 => group >= 64,
            GpuGemmKernel.Simt128 => group >= 256,
            GpuGemmKernel.Tf32 => group >= IlgpuTiledGemm.Tf32Threads && Accelerator.WarpSize == 32,
            _ => true,
        };
    }

    /// <summary>The GEMM kernel for an M x N x K product: the forced one where it can run, else TF32 where allowed,
    /// else the 128-wide register tiles for large products, the 64-wide for mid-sized ones and the simple kernel for
    /// slivers (fewer than 32 rows or columns, or K under 8), where a big tile would compute mostly padding.</summary>
    public GpuGemmKernel ChooseGemmKernel(int m, int n, int k)
    {
        if (ForcedGemmKernel != GpuGemmKernel.Auto && Supports(ForcedGemmKernel)) return ForcedGemmKernel;
        if (Math.Min(m, n) < 32 || k < 8 || !Supports(GpuGemmKernel.Simt64)) return GpuGemmKernel.Simple;
        if (AllowTf32 && Supports(GpuGemmKernel.Tf32)) return GpuGemmKernel.Tf32;
        return m >= 128 && n >= 128 && Supports(GpuGemmKernel.Simt128) ? GpuGemmKernel.Simt128 : GpuGemmKernel.Simt64;
    }

    /// <summary>The GEMM a convolution pass is as an implicit GEMM, per group: forward M = output channels,
    /// N = output positions, K = input channels x taps; input gradient M = input channels, N = input positions,
    /// K = output channels x taps; weight gradient M = output channels, N = input channels x taps, K = output positions.</summary>
    public static (int M, int N, int K) ConvGemmShape(in ConvSpec s, ConvPass pass) => pass switch
    {
        ConvPass.Forward => (s.KPerGroup, s.N * s.OutH * s.OutW, s.CPerGroup * s.R * s.S),
        ConvPass.InputGrad => (s.CPerGroup, s.N * s.H * s.W, s.KPerGroup * s.R * s.S),
        _ => (s.KPerGroup, s.CPerGroup * s.R * s.S, s.N * s.OutH * s.OutW),
    };

    /// <summary>Direct or implicit GEMM for a convolution pass: depthwise stays direct (a GEMM per channel of one
    /// row); otherwise implicit GEMM once the pass's GEMM has 32 rows (half a 64-row tile).</summary>
    public GpuConvKernel ChooseConvKernel(in ConvSpec s, ConvPass pass)
    {
        if (s.IsDepthwise || !Supports(GpuGemmKernel.Simt64)) return GpuConvKernel.Direct;
        if (ForcedConvKernel != GpuConvKernel.Auto) return ForcedConvKernel;
        return ConvGemmShape(s, pass).M >= 32 ? GpuConvKernel.ImplicitGemm : GpuConvKernel.Direct;
    }

    /// <summary>What runs a convolution pass: "direct" or "implicit-gemm" and its GEMM kernel (profiler labels, benchmarks).</summary>
    public string ConvKernelName(in ConvSpec s, ConvPass pass)
    {
        if (ChooseConvKernel(s, pass) == GpuConvKernel.Direct) return "direct";
        var (m, n, k) = ConvGemmShape(s, pass);
        return "implicit-gemm " + KernelName(ConvGemmKernel(m, n, k));
    }

    protected override string ConvAlgorithmLabel(in ConvSpec s, ConvPass pass) => ConvKernelName(s, pass);

    /// <summary>Launch shape for a tiled kernel: K is split when the output tiles alone would leave most
    /// multiprocessors idle (two groups per multiprocessor wanted), keeping each chunk at least four tiles deep.</summary>
    TileParams Tiles(GpuGemmKernel kernel, int m, int n, int k, int matrices, bool aKMajor, bool bNMajor, bool vectorA, bool vectorB, out KernelConfig config)
    {
        bool tf32 = kernel == GpuGemmKernel.Tf32;
        int side = kernel == GpuGemmKernel.Simt64 ? 8 : 16, tile = tf32 ? IlgpuTiledGemm.Tf32Tile : 8 * side, depth = tf32 ? IlgpuTiledGemm.Tf32Depth : side;
        int tilesM = (m + tile - 1) / tile, tilesN = (n + tile - 1) / tile;
        long groups = (long)tilesM * tilesN * matrices;
        int maxSplits = Math.Max(1, k / (4 * depth));
        int splits = ForcedSplits > 0 ? Math.Min(ForcedSplits, Math.Max(1, (k + depth - 1) / depth))
            : (int)Math.Clamp((2L * Accelerator.NumMultiprocessors + groups - 1) / groups, 1, maxSplits);
        int chunk = ((k + splits - 1) / splits + depth - 1) / depth * depth;
        splits = Math.Max(1, (k + chunk - 1) / chunk);
        var group = tf32 ? new Index3D(IlgpuTiledGemm.Tf32Threads, 1, 1) : new Index3D(side, side, 1);
        int sharedFloats = tf32 ? IlgpuTiledGemm.Tf32SharedFloats : IlgpuTiledGemm.SimtSharedFloats(side);
        config = new KernelConfig(new Index3D(tilesN, tilesM, matrices * splits), group, SharedMemoryConfig.RequestDynamic<float>(sharedFloats));
        return new TileParams(m, n, k, side, side == 8 ? 3 : 4, aKMajor ? 1 : 0, bNMajor ? 1 : 0, splits, chunk, vectorA && !NoVectorLoads ? 1 : 0, vectorB && !NoVectorLoads ? 1 : 0);
    }

    /// <summary>A tiled kernel, on CUDA with its launch bounds (<see cref="IlgpuGemmKernels.LaunchBounds"/>).</summary>
    Action<KernelConfig, TOps, TileParams> LoadTiled<TOps>(Action<TOps, TileParams> kernel) where TOps : struct, IGemmOperands =>
        Accelerator.AcceleratorType == AcceleratorType.Cuda
            ? Accelerator.LoadStreamKernel(kernel, IlgpuGemmKernels.LaunchBounds)
            : Accelerator.LoadStreamKernel(kernel);

    void TiledGemm(in GemmSpec s, GpuGemmKernel kernel, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c)
    {
        var ops = new DenseOperands(V(a), V(b), V(c), s);
        var (vectorA, vectorB) = DenseOperands.Vectorizable(s, ((IlgpuBuffer<float>)a).Offset, ((IlgpuBuffer<float>)b).Offset);
        var p = Tiles(kernel, s.M, s.N, s.K, s.Matrices, !s.TransA, !s.TransB, vectorA, vectorB, out var config);
        if (p.Splits > 1)
        {
            int total = s.Matrices * s.M * s.N, group = RowGroupSize;
            (_scaleOutput ??= Accelerator.LoadStreamKernel<DenseOperands, int, int, int>(IlgpuGemmKernels.ScaleOutput))
                (new KernelConfig((total + group - 1) / group, group), ops, s.M, s.N, total);
        }
        if (kernel == GpuGemmKernel.Tf32)
            (_denseTf32 ??= LoadTiled<DenseOperands>(IlgpuGemmKernels.DenseTf32))(config, ops, p);
        else
            (_denseSimt ??= LoadTiled<DenseOperands>(IlgpuGemmKernels.DenseSimt))(config, ops, p);
    }

    /// <summary>The tiled kernel for a convolution pass's GEMM, or null where the small simple kernel would be chosen
    /// (the direct kernels serve those shapes better).</summary>
    GpuGemmKernel ConvGemmKernel(int m, int n, int k)
    {
        var kernel = ChooseGemmKernel(m, n, k);
        return kernel == GpuGemmKernel.Simple ? GpuGemmKernel.Simt64 : kernel;
    }

    void ImplicitConvForward(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> w, DeviceBuffer<float> y)
    {
        var (m, n, k) = ConvGemmShape(s, ConvPass.Forward);
        var kernel = ConvGemmKernel(m, n, k);
        var p = Tiles(kernel, m, n, k, s.Groups, true, true, ConvForwardOperands.VectorWeights(ConvParams.From(s), ((IlgpuBuffer<float>)w).Offset), false, out var config);
        if (p.Splits > 1) Fill(y, 0, (int)s.OutputSize, 0f);
        var ops = new ConvForwardOperands(V(x), V(w), V(y), ConvParams.From(s));
        if (kernel == GpuGemmKernel.Tf32)
            (_convForwardTf32 ??= LoadTiled<ConvForwardOperands>(IlgpuGemmKernels.ConvForwardTf32))(config, ops, p);
        else
            (_convForwardSimt ??= LoadTiled<ConvForwardOperands>(IlgpuGemmKernels.ConvForwardSimt))(config, ops, p);
    }

    void ImplicitConvBackwardInput(in ConvSpec s, DeviceBuffer<float> dy, DeviceBuffer<float> w, DeviceBuffer<float> dx, bool accumulate)
    {
        var (m, n, k) = ConvGemmShape(s, ConvPass.InputGrad);
        var kernel = ConvGemmKernel(m, n, k);
        var p = Tiles(kernel, m, n, k, s.Groups, s.R * s.S > 1, true, false, false, out var config);
        if (p.Splits > 1 && !accumulate) Fill(dx, 0, (int)s.InputSize, 0f);
        var ops = new ConvInputGradOperands(V(dy), V(w), V(dx), ConvParams.From(s, accumulate));
        if (kernel == GpuGemmKernel.Tf32)
            (_convInputTf32 ??= LoadTiled<ConvInputGradOperands>(IlgpuGemmKernels.ConvInputGradTf32))(config, ops, p);
        else
            (_convInputSimt ??= LoadTiled<ConvInputGradOperands>(IlgpuGemmKernels.ConvInputGradSimt))(config, ops, p);
    }

    void ImplicitConvBackwardWeight(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate)
    {
        var (m, n, k) = ConvGemmShape(s, ConvPass.WeightGrad);
        var kernel = ConvGemmKernel(m, n, k);
        var p = Tiles(kernel, m, n, k, s.Groups, true, false, false, false, out var config);
        if (p.Splits > 1 && !accumulate) Fill(dw, 0, (int)s.WeightSize, 0f);
        var ops = new ConvWeightGradOperands(V(x), V(dy), V(dw), ConvParams.From(s, accumulate));
        if (kernel == GpuGemmKernel.Tf32)
            (_convWeightTf32 ??= LoadTiled<ConvWeightGradOperands>(IlgpuGemmKernels.ConvWeightGradTf32))(config, ops, p);
        else
            (_convWeightSimt ??= LoadTiled<ConvWeightGradOperands>(IlgpuGemmKernels.ConvWeightGradSimt))(config, ops, p);
    }
}
