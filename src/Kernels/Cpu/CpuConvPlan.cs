namespace LsKd.Kernels.Cpu;

/// <summary>The CPU convolution algorithms. Each is one family of kernels that runs all three passes of the
/// shapes it supports (<see cref="ConvPlanner.Supports"/>); <see cref="ConvPlanner.Choose"/> picks one per
/// (shape, pass, SIMD width) by the rules measured with `lskd bench layers` and `bench train --profile`.</summary>
public enum ConvAlgorithm
{
    /// <summary>im2col into a column buffer, then a GEMM per image and group (col2im for the input gradient). Any shape.</summary>
    Im2col,
    /// <summary>1x1, stride 1, no padding: the input already is the column matrix, a GEMM per image.</summary>
    Pointwise,
    /// <summary>1x1 with stride &gt; 1 (a ResNet projection shortcut): pointwise on the subsampled input.</summary>
    StridedPointwise,
    /// <summary>Implicit GEMM on the padded (stride 2: phase-split) grid of <see cref="CpuBackend.ConvGrid"/>: the GEMM
    /// packs its panels straight from the planes. Input gradient: the forward of the flipped kernel (stride 1,
    /// square kernels) or W^T dy scattered into the planes; weight gradient: shifted dot products.</summary>
    Grid,
    /// <summary>The grid without a GEMM: 16 output channels in 16 vector accumulators (16 to 64 channels per group).
    /// Forward, and the stride-1 input gradient as the forward of the flipped kernel.</summary>
    GridDirect,
    /// <summary>Channels in the vector lanes, 7 output positions per call (outputs whose width is a multiple of 7
    /// and 16-channel blocks): no wasted grid columns on small outputs.</summary>
    Lanes,
    /// <summary>Winograd F(2x2, 3x3): 3x3, stride 1, pad 1, ungrouped, 16-channel output blocks. 2.25x fewer
    /// multiply-adds through transformed tiles; forward, the input gradient as the forward of the flipped kernel,
    /// and the weight gradient (checked, but slower than grid and lanes where measured, so never planned).</summary>
    Winograd,
    /// <summary>Depthwise, stride 1 or 2: all taps of a plane in registers over its grid (shifted slices).</summary>
    Depthwise,
    /// <summary>Depthwise, any stride: per-row scalar and vector loops (the fallback).</summary>
    DepthwiseLoops,
}

/// <summary>Which algorithms can run a convolution and which one runs by default. Pure functions of the shape,
/// the pass and the SIMD width, so tests and `lskd check` can run every supported algorithm one by one.</summary>
public static class ConvPlanner
{
    public static IReadOnlyList<ConvAlgorithm> All { get; } = Enum.GetValues<ConvAlgorithm>();

    /// <summary>The command-line name: "grid-direct" for <see cref="ConvAlgorithm.GridDirect"/>.</summary>
    public static string Name(ConvAlgorithm a) => a switch
    {
        ConvAlgorithm.Im2col => "im2col",
        ConvAlgorithm.Pointwise => "pointwise",
        ConvAlgorithm.StridedPointwise => "strided-pointwise",
        ConvAlgorithm.Grid => "grid",
        ConvAlgorithm.GridDirect => "grid-direct",
        ConvAlgorithm.Lanes => "lanes",
        ConvAlgorithm.Winograd => "winograd",
        ConvAlgorithm.Depthwise => "depthwise",
        ConvAlgorithm.DepthwiseLoops => "depthwise-loops",
        _ => throw new ArgumentOutOfRangeException(nameof(a), a, null),
    };

    public static bool TryParse(string name, out ConvAlgorithm algorithm)
    {
        foreach (var a in All)
            if (string.Equals(Name(a), name, StringComparison.OrdinalIgnoreCase)) { algorithm = a; return true; }
        algorithm = default;
        return false;
    }

    internal static bool IsPointwise(in ConvSpec s) => s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0;
    internal static bool IsStridedPointwise(in ConvSpec s) => s.R == 1 && s.S == 1 && s.Stride > 1 && s.Pad == 0 && !s.IsDepthwise;
    internal static bool OnGrid(in ConvSpec s) => s.Stride == 1 || s.Stride == 2;

    /// <summary>Stride 1 with a square kernel and pad &lt;= R - 1: the input gradient is the forward convolution of
    /// dy with the flipped, transposed kernel (<see cref="Adjoint"/>).</summary>
    internal static bool Flippable(in ConvSpec s) => s.Stride == 1 && s.R == s.S && s.Pad <= s.R - 1 && !IsPointwise(s);

    /// <summary>The forward convolution whose output is the input gradient of a <see cref="Flippable"/> one.</summary>
    internal static ConvSpec Adjoint(in ConvSpec s) => new(s.N, s.K, s.OutH, s.OutW, s.C, s.R, s.S, 1, s.R - 1 - s.Pad, s.Groups);

    static bool WinogradShape(in ConvSpec s) => s.R == 3 && s.S == 3 && s.Stride == 1 && s.Pad == 1 && s.Groups == 1 && s.K % 16 == 0;

    /// <summary>Where Winograd measured faster than the direct kernels: planes of 14x14 and up with at least 8 input
    /// channels (the 1-channel stem has nothing to save), and on 512-bit vectors 7x7 planes, whose 16 tiles fill one
    /// vector (stage 3 of the ResNets, 64 channels: forward 1.07 ms against 1.39 for lanes, input gradient 1.13
    /// against 1.48; with 4 tiles per vector the row-of-tiles layout had been 1.9x slower than lanes).</summary>
    static bool WinogradPreferred(in ConvSpec s, int lanes) =>
        WinogradShape(s) && s.C >= 8 &&
        (s.OutH * s.OutW >= 196 || (lanes == 16 && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && s.OutH == 7 && s.OutW == 7 && s.H == 7 && s.W == 7));

    static bool DirectShape(in ConvSpec s) => OnGrid(s) && s.KPerGroup % 16 == 0 && s.KPerGroup <= 64;
    static bool LanesShape(in ConvSpec s) => !s.IsDepthwise && s.KPerGroup % 16 == 0 && s.OutW % 7 == 0;

    /// <summary>Where the lanes forward measured faster than the grid: 7x7 outputs, and stride 2 up to 14x14 (the
    /// grid's wasted columns are largest there).</summary>
    static bool LanesPreferred(in ConvSpec s) =>
        LanesShape(s) && (s.Stride == 1 || s.Stride == 2) && (s.R > 1 || s.S > 1 || s.Stride == 2) &&
        (s.OutH * s.OutW <= 49 || (s.Stride == 2 && s.OutH * s.OutW <= 196));

    /// <summary>Output planes of at most 7x7, where per-image GEMMs are too narrow.</summary>
    static bool SmallPlane(in ConvSpec s) => s.OutH * s.OutW <= 49;

    /// <summary>Whether an algorithm can run this pass of this shape (on either SIMD width: every algorithm has both).</summary>
    public static bool Supports(ConvAlgorithm a, in ConvSpec s, ConvPass pass)
    {
        return a switch
        {
            ConvAlgorithm.Im2col => true,
            ConvAlgorithm.Pointwise => IsPointwise(s),
            ConvAlgorithm.StridedPointwise => IsStridedPointwise(s),
            ConvAlgorithm.Grid => pass == ConvPass.InputGrad ? Flippable(s) || OnGrid(s) : OnGrid(s),
            ConvAlgorithm.GridDirect => pass switch
            {
                ConvPass.Forward => DirectShape(s),
                ConvPass.InputGrad => Flippable(s) && DirectShape(Adjoint(s)),
                _ => false,
            },
            ConvAlgorithm.Lanes => pass switch
            {
                ConvPass.Forward => LanesShape(s),
                ConvPass.InputGrad => (Flippable(s) && LanesShape(Adjoint(s))) || (s.Stride > 1 && LanesShape(s) && s.CPerGroup % 32 == 0),
                _ => !s.IsDepthwise && s.KPerGroup % 16 == 0 && s.R == 3 && s.S == 3,
            },
            ConvAlgorithm.Winograd => pass switch
            {
                ConvPass.Forward => WinogradShape(s),
                ConvPass.InputGrad => WinogradShape(s) && WinogradShape(Adjoint(s)),
                _ => WinogradShape(s),
            },
            ConvAlgorithm.Depthwise => s.IsDepthwise && (s.Stride == 1 || s.Stride == 2),
            ConvAlgorithm.DepthwiseLoops => s.IsDepthwise,
            _ => false,
        };
    }

    /// <summary>The default algorithm for a shape, pass and vector width (16 or 8 floats), as measured with
    /// `lskd bench layers --all-algorithms` on `--device cpu` and `--device cpu-v256`.</summary>
    public static ConvAlgorithm Choose(in ConvSpec s, ConvPass pass, int lanes)
    {
        if (s.IsDepthwise) return Supports(ConvAlgorithm.Depthwise, s, pass) ? ConvAlgorithm.Depthwise : ConvAlgorithm.DepthwiseLoops;
        switch (pass)
        {
            case ConvPass.Forward:
                if (WinogradPreferred(s, lanes)) return ConvAlgorithm.Winograd;
                if (LanesPreferred(s) && (!IsStridedPointwise(s) || SmallPlane(s))) return ConvAlgorithm.Lanes;
                // Strided 1x1 shortcuts: im2col gathers each image's pixels into a small column buffer that stays in
                // cache (0.28 ms against 0.41 for lanes, 0.63 for subsampling the whole tensor first); on 256-bit
                // vectors the direct kernel (0.59 against 0.86).
                if (IsStridedPointwise(s)) return lanes == 8 && DirectShape(s) ? ConvAlgorithm.GridDirect : ConvAlgorithm.Im2col;
                // 1x1 on 7x7 planes: a GEMM per image has 49 columns; the grid puts 16 images side by side (1.6x).
                if (IsPointwise(s)) return SmallPlane(s) ? ConvAlgorithm.Grid : ConvAlgorithm.Pointwise;
                if (DirectShape(s)) return ConvAlgorithm.GridDirect;
                return OnGrid(s) ? ConvAlgorithm.Grid : ConvAlgorithm.Im2col;
            case ConvPass.InputGrad:
                // Stride 2 with 32-channel input blocks: the lanes scatter; with 16 the grid measured faster
                // (ResNet 16->32: 1.96 against 2.34 ms).
                if (s.Stride == 2 && LanesPreferred(s) && s.CPerGroup % 32 == 0) return ConvAlgorithm.Lanes;
                if (IsStridedPointwise(s)) return ConvAlgorithm.Im2col;   // col2im per image: 0.40 ms against 0.70 subsampled
                if (Flippable(s))
                {
                    var adjoint = Adjoint(s);
                    // Fewer than 8 input channels (the stem): the flipped GEMM would have as few rows; im2col 2x faster.
                    if (s.CPerGroup < 8) return ConvAlgorithm.Im2col;
                    if (WinogradPreferred(adjoint, lanes) && WinogradShape(s)) return ConvAlgorithm.Winograd;
                    if (LanesPreferred(adjoint)) return ConvAlgorithm.Lanes;
                    return DirectShape(adjoint) ? ConvAlgorithm.GridDirect : ConvAlgorithm.Grid;
                }
                if (s.Stride == 2) return ConvAlgorithm.Grid;
                // 1x1: per-image GEMMs on 512-bit vectors except on 7x7 planes; on 256-bit the grid was 14-23 % faster.
                if (IsPointwise(s)) return SmallPlane(s) || lanes == 8 ? ConvAlgorithm.Grid : ConvAlgorithm.Pointwise;
                return ConvAlgorithm.Im2col;
            default:
                // 1x1 weight gradients from 14x14 up (and the strided shortcuts) as shifted dot products on the grid
                // (1.6-4x the GEMM per image); on 7x7 planes the 512-bit GEMM is faster.
                if (IsStridedPointwise(s)) return OnGrid(s) ? ConvAlgorithm.Grid : ConvAlgorithm.StridedPointwise;
                if (IsPointwise(s)) return SmallPlane(s) && lanes == 16 ? ConvAlgorithm.Pointwise : ConvAlgorithm.Grid;
                // Winograd with channels in the lanes on 512-bit vectors from 7x7 up (stage 1: 1.4-1.7 ms against
                // 1.9-2.0 for the grid; stage 2: 1.05-1.10 against 1.59 for lanes; stage 3: 1.05 against 1.42 for lanes).
                if (lanes == 16 && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && WinogradShape(s) && s.C % 16 == 0 && s.OutH * s.OutW >= 49)
                    return ConvAlgorithm.Winograd;
                // 3x3 lanes weight gradients up to 14x14 outputs; at 28x28 the grid measured as fast.
                if (Supports(ConvAlgorithm.Lanes, s, pass) && (s.Stride == 1 || s.Stride == 2) && s.OutH * s.OutW <= 196) return ConvAlgorithm.Lanes;
                if (OnGrid(s)) return ConvAlgorithm.Grid;
                return IsPointwise(s) ? ConvAlgorithm.Pointwise : ConvAlgorithm.Im2col;
        }
    }
}
