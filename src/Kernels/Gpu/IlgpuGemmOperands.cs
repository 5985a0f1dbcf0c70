using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

/// <summary>Float atomic add that also terminates on NaN off CUDA: ILGPU's CPU accelerator retries its
/// compare-exchange while the value read differs from the value seen, and NaN never equals itself, so one NaN froze
/// the emulator; here the values are compared as bits. On CUDA it is the hardware red.add.</summary>
public static class FloatAtomics
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Add(ref float target, float value)
    {
        if (ILGPU.Runtime.Cuda.CudaAsm.IsSupported) { Atomic.Add(ref target, value); return; }
        float seen = target;
        while (true)
        {
            float before = Atomic.CompareExchange(ref target, seen, seen + value);
            if (Interop.FloatAsInt(before) == Interop.FloatAsInt(seen)) return;
            seen = before;
        }
    }
}

/// <summary>
/// x / d without a division instruction, for 0 &lt;= x &lt; 2^31 and d &gt;= 1: floor(x M / 2^s) with s = 32 + floor(log2 d)
/// and M = ceil(2^s / d) &lt;= 2^32 (Granlund and Montgomery). Exact because M d - 2^s &lt; d &lt;= 2^(s - 31), so the error
/// x (M d - 2^s) / (d 2^s) stays below 1 / d. One 64-bit multiply and a shift on the GPU where an integer division is
/// a loop of some twenty instructions: the implicit-GEMM gathers split every k and n into (channel, r, s) and
/// (image, row, column), eight times per operand and k step.
/// </summary>
public readonly struct FastDivisor
{
    readonly ulong _magic;
    readonly int _shift, _divisor;

    public FastDivisor(int divisor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(divisor, 1);
        _divisor = divisor;
        _shift = 32 + (31 - System.Numerics.BitOperations.LeadingZeroCount((uint)divisor));
        _magic = ((1UL << _shift) + (ulong)divisor - 1) / (ulong)divisor;
    }

    public int Divisor => _divisor;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Div(int x) => (int)(((ulong)(uint)x * _magic) >> _shift);

    /// <summary>(x / d, x % d).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int DivRem(int x, out int remainder)
    {
        int q = Div(x);
        remainder = x - q * _divisor;
        return q;
    }
}

/// <summary>C = alpha op(A) op(B) + beta C over batched, per-head strided views (the GemmSpec's layout).</summary>
public readonly struct DenseOperands(FView a, FView b, FView c, in GemmSpec s) : IGemmOperands
{
    readonly FView _a = a, _b = b, _c = c;
    readonly int _transA = s.TransA ? 1 : 0, _transB = s.TransB ? 1 : 0, _lda = s.LdA, _ldb = s.LdB, _ldc = s.LdC, _heads = s.Heads;
    readonly long _offA = s.OffsetA, _offB = s.OffsetB, _offC = s.OffsetC, _strideA = s.StrideA, _strideB = s.StrideB, _strideC = s.StrideC,
        _headA = s.HeadStrideA, _headB = s.HeadStrideB, _headC = s.HeadStrideC;
    readonly float _alpha = s.Alpha, _beta = s.Beta;
    readonly FastDivisor _byHeads = new(s.Heads);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    long AIndex(int z, int m, int k)
    {
        int batch = _byHeads.DivRem(z, out int head);
        return _offA + batch * _strideA + head * _headA + (_transA != 0 ? (long)k * _lda + m : (long)m * _lda + k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    long BIndex(int z, int k, int n)
    {
        int batch = _byHeads.DivRem(z, out int head);
        return _offB + batch * _strideB + head * _headB + (_transB != 0 ? (long)n * _ldb + k : (long)k * _ldb + n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int z, int m, int k) => _a[AIndex(z, m, k)];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int z, int k, int n) => _b[BIndex(z, k, n)];

    /// <summary>Along k (m if A is transposed): the index is a multiple of 4 where the host allows vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public F4 A4(int z, int m, int k) => _a.AsContiguous().Cast<F4>()[AIndex(z, m, k) >> 2];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public F4 B4(int z, int k, int n) => _b.AsContiguous().Cast<F4>()[BIndex(z, k, n) >> 2];

    /// <summary>Whether runs of four along A's (B's) contiguous direction start 16 bytes apart from a 16-byte
    /// boundary: every offset, stride and leading dimension a multiple of 4 floats, from a view that starts on one.</summary>
    public static (bool A, bool B) Vectorizable(in GemmSpec s, long viewOffsetA, long viewOffsetB) =>
        (AllAligned(viewOffsetA, s.OffsetA, s.StrideA, s.HeadStrideA, s.LdA), AllAligned(viewOffsetB, s.OffsetB, s.StrideB, s.HeadStrideB, s.LdB));

    static bool AllAligned(params long[] values) => values.All(v => (v & 3) == 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int z, int m, int n, float sum, bool atomic)
    {
        long i = CIndex(z, m, n);
        if (atomic) FloatAtomics.Add(ref _c[i], _alpha * sum);
        else _c[i] = _beta == 0f ? _alpha * sum : _alpha * sum + _beta * _c[i];
    }

    /// <summary>C *= beta (0 when beta is 0, so NaNs in fresh memory go): before split-K sums are added in.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ScaleOutput(int z, int m, int n)
    {
        long i = CIndex(z, m, n);
        _c[i] = _beta == 0f ? 0f : _beta * _c[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    long CIndex(int z, int m, int n)
    {
        int batch = _byHeads.DivRem(z, out int head);
        return _offC + batch * _strideC + head * _headC + (long)m * _ldc + n;
    }
}

/// <summary>The im2col matrix of group g, gathered: element (tap = (c, r, s), position = (img, oh, ow)) is
/// x[img, g Cg + c, oh stride - pad + r, ow stride - pad + s], 0 in the padding.</summary>
public readonly struct Im2col(in ConvParams p)
{
    readonly FastDivisor _byTaps = new(p.R * p.S), _byS = new(p.S), _byOutPlane = new(p.OutH * p.OutW), _byOutW = new(p.OutW);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float X(FView x, in ConvParams p, int cg, int g, int tap, int position)
    {
        int c = _byTaps.DivRem(tap, out int rs), r = _byS.DivRem(rs, out int s);
        int img = _byOutPlane.DivRem(position, out int q), oh = _byOutW.DivRem(q, out int ow);
        int ih = oh * p.Stride - p.Pad + r, iw = ow * p.Stride - p.Pad + s;
        return ih >= 0 && ih < p.H && iw >= 0 && iw < p.W ? x[((img * p.C + g * cg + c) * p.H + ih) * p.W + iw] : 0f;
    }
}

/// <summary>Convolution forward as a GEMM per group g: y[img, g Kg + m, p] = sum over k = (c, r, s) of
/// w[g Kg + m, c, r, s] x[img, g Cg + c, oh stride - pad + r, ow stride - pad + s], columns n = (img, p = (oh, ow)).</summary>
public readonly struct ConvForwardOperands(FView x, FView w, FView y, ConvParams p) : IGemmOperands
{
    readonly FView _x = x, _w = w, _y = y;
    readonly ConvParams _p = p;
    readonly int _cg = p.C / p.Groups, _kg = p.K / p.Groups, _taps = p.R * p.S, _outPlane = p.OutH * p.OutW;
    readonly Im2col _im2col = new(p);
    readonly FastDivisor _byOutPlane = new(p.OutH * p.OutW);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int g, int m, int k) => _w[(g * _kg + m) * (_cg * _taps) + k];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int g, int k, int n) => _im2col.X(_x, _p, _cg, g, k, n);

    /// <summary>Four consecutive k of a filter: vectors where C/groups R S is a multiple of 4 (<see cref="VectorWeights"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public F4 A4(int g, int m, int k) => _w.AsContiguous().Cast<F4>()[((g * _kg + m) * (_cg * _taps) + k) >> 2];

    /// <summary>Not asked for: the im2col gather has no contiguous runs (VectorB is 0).</summary>
    public F4 B4(int g, int k, int n) => default;

    public static bool VectorWeights(in ConvParams p, long viewOffsetW) => (p.C / p.Groups * p.R * p.S & 3) == 0 && (viewOffsetW & 3) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int g, int m, int n, float sum, bool atomic)
    {
        int img = _byOutPlane.DivRem(n, out int q);
        int i = (img * _p.K + g * _kg + m) * _outPlane + q;
        if (atomic) FloatAtomics.Add(ref _y[i], sum); else _y[i] = sum;
    }
}

/// <summary>Convolution input gradient as a GEMM per group: dx[img, g Cg + m, ih, iw] = sum over k = (kk, r, s) of
/// w[g Kg + kk, m, r, s] dy[img, g Kg + kk, oh, ow] where oh stride = ih + pad - r (and likewise ow), columns
/// n = (img, ih, iw): the transposed convolution, gathered, so no atomics unless K is split.</summary>
public readonly struct ConvInputGradOperands(FView dy, FView w, FView dx, ConvParams p) : IGemmOperands
{
    readonly FView _dy = dy, _w = w, _dx = dx;
    readonly ConvParams _p = p;
    readonly int _cg = p.C / p.Groups, _kg = p.K / p.Groups, _taps = p.R * p.S, _plane = p.H * p.W;
    readonly FastDivisor _byTaps = new(p.R * p.S), _byS = new(p.S), _byPlane = new(p.H * p.W), _byW = new(p.W), _byStride = new(p.Stride);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int g, int m, int k)
    {
        int kk = _byTaps.DivRem(k, out int rs);
        return _w[((g * _kg + kk) * _cg + m) * _taps + rs];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int g, int k, int n)
    {
        int kk = _byTaps.DivRem(k, out int rs), r = _byS.DivRem(rs, out int s);
        int img = _byPlane.DivRem(n, out int q), ih = _byW.DivRem(q, out int iw);
        int th = ih + _p.Pad - r, tw = iw + _p.Pad - s;
        if (th < 0 || tw < 0) return 0f;
        int oh = _byStride.DivRem(th, out int offH), ow = _byStride.DivRem(tw, out int offW);
        if (offH != 0 || offW != 0 || oh >= _p.OutH || ow >= _p.OutW) return 0f;
        return _dy[((img * _p.K + g * _kg + kk) * _p.OutH + oh) * _p.OutW + ow];
    }

    /// <summary>Not asked for: both operands are gathers (VectorA and VectorB are 0).</summary>
    public F4 A4(int g, int m, int k) => default;
    public F4 B4(int g, int k, int n) => default;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int g, int m, int n, float sum, bool atomic)
    {
        int img = _byPlane.DivRem(n, out int q);
        int i = (img * _p.C + g * _cg + m) * _plane + q;
        if (atomic) FloatAtomics.Add(ref _dx[i], sum);
        else _dx[i] = _p.Accumulate != 0 ? _dx[i] + sum : sum;
    }
}

/// <summary>Convolution weight gradient as a GEMM per group: dw[g Kg + m, n = (c, r, s)] = sum over k = (img, oh, ow)
/// of dy[img, g Kg + m, oh, ow] x[img, g Cg + c, oh stride - pad + r, ow stride - pad + s]. K is the whole batch's
/// output positions and M, N are small, so this one is split over K and summed atomically.</summary>
public readonly struct ConvWeightGradOperands(FView x, FView dy, FView dw, ConvParams p) : IGemmOperands
{
    readonly FView _x = x, _dy = dy, _dw = dw;
    readonly ConvParams _p = p;
    readonly int _cg = p.C / p.Groups, _kg = p.K / p.Groups, _taps = p.R * p.S, _outPlane = p.OutH * p.OutW;
    readonly Im2col _im2col = new(p);
    readonly FastDivisor _byOutPlane = new(p.OutH * p.OutW);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int g, int m, int k)
    {
        int img = _byOutPlane.DivRem(k, out int q);
        return _dy[(img * _p.K + g * _kg + m) * _outPlane + q];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int g, int k, int n) => _im2col.X(_x, _p, _cg, g, n, k);

    /// <summary>Not asked for: runs of dy cross images unless the output plane is a multiple of 4, and B is a
    /// gather (VectorA and VectorB are 0).</summary>
    public F4 A4(int g, int m, int k) => default;
    public F4 B4(int g, int k, int n) => default;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int g, int m, int n, float sum, bool atomic)
    {
        int i = (g * _kg + m) * (_cg * _taps) + n;
        if (atomic) FloatAtomics.Add(ref _dw[i], sum);
        else _dw[i] = _p.Accumulate != 0 ? _dw[i] + sum : sum;
    }
}

/// <summary>The entry points: each tiled kernel instantiated for each operand kind (ILGPU compiles concrete methods).</summary>
internal static class IlgpuGemmKernels
{
    /// <summary>At most 256 threads a group, at least two groups resident per multiprocessor: ptxas then keeps each
    /// tiled kernel within 128 registers (65536 / 512 threads) where, left to itself, it took 127 to 135, and one
    /// 256-thread group would have filled a multiprocessor's registers. ptxas -v reads no spills at 128.</summary>
    public static readonly KernelSpecialization LaunchBounds = new(256, 2);

    /// <summary>The specialization a kernel is loaded with: the tiled GEMMs' launch bounds, none for the rest.</summary>
    public static KernelSpecialization SpecializationOf(System.Reflection.MethodInfo kernel) =>
        kernel.DeclaringType == typeof(IlgpuGemmKernels) && kernel.Name != nameof(ScaleOutput) ? LaunchBounds : KernelSpecialization.Empty;

    public static void DenseSimt(DenseOperands o, TileParams p) => IlgpuTiledGemm.Simt(o, p);
    public static void DenseTf32(DenseOperands o, TileParams p) => IlgpuTiledGemm.Tf32(o, p);
    public static void ConvForwardSimt(ConvForwardOperands o, TileParams p) => IlgpuTiledGemm.Simt(o, p);
    public static void ConvForwardTf32(ConvForwardOperands o, TileParams p) => IlgpuTiledGemm.Tf32(o, p);
    public static void ConvInputGradSimt(ConvInputGradOperands o, TileParams p) => IlgpuTiledGemm.Simt(o, p);
    public static void ConvInputGradTf32(ConvInputGradOperands o, TileParams p) => IlgpuTiledGemm.Tf32(o, p);
    public static void ConvWeightGradSimt(ConvWeightGradOperands o, TileParams p) => IlgpuTiledGemm.Simt(o, p);
    public static void ConvWeightGradTf32(ConvWeightGradOperands o, TileParams p) => IlgpuTiledGemm.Tf32(o, p);

    /// <summary>C *= beta over one thread per (matrix, m, n), before a split-K GEMM adds its partial sums.</summary>
    public static void ScaleOutput(DenseOperands o, int m, int n, int total)
    {
        int i = Grid.GlobalIndex.X;
        if (i >= total) return;
        int row = i / n, z = row / m;
        o.ScaleOutput(z, row - z * m, i - row * n);
    }
}
