using System.Runtime.CompilerServices;
using ILGPU;

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

/// <summary>C = alpha op(A) op(B) + beta C over batched, per-head strided views (the GemmSpec's layout).</summary>
public readonly struct DenseOperands(FView a, FView b, FView c, in GemmSpec s) : IGemmOperands
{
    readonly FView _a = a, _b = b, _c = c;
    readonly int _transA = s.TransA ? 1 : 0, _transB = s.TransB ? 1 : 0, _lda = s.LdA, _ldb = s.LdB, _ldc = s.LdC, _heads = s.Heads;
    readonly long _offA = s.OffsetA, _offB = s.OffsetB, _offC = s.OffsetC, _strideA = s.StrideA, _strideB = s.StrideB, _strideC = s.StrideC,
        _headA = s.HeadStrideA, _headB = s.HeadStrideB, _headC = s.HeadStrideC;
    readonly float _alpha = s.Alpha, _beta = s.Beta;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int z, int m, int k)
    {
        int batch = z / _heads, head = z - batch * _heads;
        return _a[_offA + batch * _strideA + head * _headA + (_transA != 0 ? (long)k * _lda + m : (long)m * _lda + k)];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int z, int k, int n)
    {
        int batch = z / _heads, head = z - batch * _heads;
        return _b[_offB + batch * _strideB + head * _headB + (_transB != 0 ? (long)n * _ldb + k : (long)k * _ldb + n)];
    }

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
        int batch = z / _heads, head = z - batch * _heads;
        return _offC + batch * _strideC + head * _headC + (long)m * _ldc + n;
    }
}

/// <summary>The im2col matrix of group g, gathered: element (tap = (c, r, s), position = (img, oh, ow)) is
/// x[img, g Cg + c, oh stride - pad + r, ow stride - pad + s], 0 in the padding.</summary>
internal static class Im2col
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float X(FView x, in ConvParams p, int cg, int taps, int outPlane, int g, int tap, int position)
    {
        int c = tap / taps, rs = tap - c * taps, r = rs / p.S, s = rs - r * p.S;
        int img = position / outPlane, q = position - img * outPlane, oh = q / p.OutW, ow = q - oh * p.OutW;
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int g, int m, int k) => _w[(g * _kg + m) * (_cg * _taps) + k];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int g, int k, int n) => Im2col.X(_x, _p, _cg, _taps, _outPlane, g, k, n);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int g, int m, int n, float sum, bool atomic)
    {
        int img = n / _outPlane, q = n - img * _outPlane;
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int g, int m, int k)
    {
        int kk = k / _taps, rs = k - kk * _taps;
        return _w[((g * _kg + kk) * _cg + m) * _taps + rs];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int g, int k, int n)
    {
        int kk = k / _taps, rs = k - kk * _taps, r = rs / _p.S, s = rs - r * _p.S;
        int img = n / _plane, q = n - img * _plane, ih = q / _p.W, iw = q - ih * _p.W;
        int th = ih + _p.Pad - r, tw = iw + _p.Pad - s;
        if (th < 0 || tw < 0) return 0f;
        int oh = th / _p.Stride, ow = tw / _p.Stride;
        if (oh * _p.Stride != th || ow * _p.Stride != tw || oh >= _p.OutH || ow >= _p.OutW) return 0f;
        return _dy[((img * _p.K + g * _kg + kk) * _p.OutH + oh) * _p.OutW + ow];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int g, int m, int n, float sum, bool atomic)
    {
        int img = n / _plane, q = n - img * _plane;
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float A(int g, int m, int k)
    {
        int img = k / _outPlane, q = k - img * _outPlane;
        return _dy[(img * _p.K + g * _kg + m) * _outPlane + q];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float B(int g, int k, int n) => Im2col.X(_x, _p, _cg, _taps, _outPlane, g, n, k);

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
