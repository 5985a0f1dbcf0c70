using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Pooling and dropout on the CPU: 2x2 stride-2 max pooling with its argmax eight outputs at a time
/// (AVX2 shuffles, scalar elsewhere), general max and average pooling per plane, their backward passes as
/// scatters through the argmax or the window, and dropout from the counter-based RNG.</summary>
public unsafe partial class CpuBackend
{
    protected override void Pool2dCore(in PoolSpec s, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<int>? argMax)
    {
        var spec = s;
        float* xp = P(x), yp = P(y);
        int* ap = argMax == null ? null : P(argMax);
        if (s.Op == PoolOp.Max && s.Kernel == 2 && s.Stride == 2 && s.Pad == 0 && ap != null)
        {
            _parallel.For(s.N * s.C, (long)ohwOf(s) * 4, (p0, p1) => { for (int p = p0; p < p1; p++) MaxPool2x2(spec, xp + (long)p * spec.H * spec.W, yp + (long)p * ohwOf(spec), ap + (long)p * ohwOf(spec)); });
            return;
        }
        int ohw = s.OutH * s.OutW, hw = s.H * s.W;
        float invArea = 1f / (s.Kernel * s.Kernel);
        _parallel.For(s.N * s.C, (long)ohw * s.Kernel * s.Kernel, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                float* xs = xp + (long)p * hw;
                for (int i = 0; i < spec.OutH; i++)
                    for (int j = 0; j < spec.OutW; j++)
                    {
                        float best = float.NegativeInfinity, sum = 0f;
                        int arg = -1;
                        for (int r = 0; r < spec.Kernel; r++)
                        {
                            int ih = i * spec.Stride - spec.Pad + r;
                            if ((uint)ih >= (uint)spec.H) continue;
                            for (int q = 0; q < spec.Kernel; q++)
                            {
                                int iw = j * spec.Stride - spec.Pad + q;
                                if ((uint)iw >= (uint)spec.W) continue;
                                float v = xs[ih * spec.W + iw];
                                sum += v;
                                if (v > best || arg < 0) { best = v; arg = ih * spec.W + iw; }
                            }
                        }
                        long o = (long)p * ohw + i * spec.OutW + j;
                        yp[o] = spec.Op == PoolOp.Max ? best : sum * invArea;
                        if (ap != null) ap[o] = arg;
                    }
            }
        });
    }

    static int ohwOf(in PoolSpec s) => s.OutH * s.OutW;

    /// <summary>2x2 max pooling with stride 2 and no padding, one plane, with the argmax of each window (the first
    /// maximum in scan order, as the general loop picks it). Eight outputs at a time: the even and odd columns of
    /// two input rows are split with a shuffle and a cross-lane permute, then compared in scan order; a row of at
    /// least eight outputs has no scalar tail (its last chunk overlaps).</summary>
    static void MaxPool2x2(in PoolSpec s, float* x, float* y, int* arg)
    {
        int w = s.W;
        for (int i = 0; i < s.OutH; i++)
        {
            float* r0 = x + 2 * i * w, r1 = r0 + w;
            float* yo = y + i * s.OutW;
            int* ao = arg + i * s.OutW;
            int rowBase = 2 * i * w, j = 0;
            if (System.Runtime.Intrinsics.X86.Avx2.IsSupported)
            {
                var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
                for (; j < s.OutW && s.OutW >= 8; j += 8)
                {
                    // The last chunk overlaps the one before instead of a scalar tail (recomputing is harmless).
                    if (j + 8 > s.OutW) j = s.OutW - 8;
                    var (a0, a1) = SplitEvenOdd(Vector256.Load(r0 + 2 * j), Vector256.Load(r0 + 2 * j + 8));
                    var (b0, b1) = SplitEvenOdd(Vector256.Load(r1 + 2 * j), Vector256.Load(r1 + 2 * j + 8));
                    var idx = Vector256.Create(rowBase + 2 * j) + lane2;
                    Vector256<float> best = a0; Vector256<int> at = idx;
                    Take(ref best, ref at, a1, idx + Vector256.Create(1));
                    Take(ref best, ref at, b0, idx + Vector256.Create(w));
                    Take(ref best, ref at, b1, idx + Vector256.Create(w + 1));
                    best.Store(yo + j);
                    at.Store(ao + j);
                }
            }
            for (; j < s.OutW; j++)
            {
                int c = 2 * j;
                float best = r0[c]; int at = rowBase + c;
                if (r0[c + 1] > best) { best = r0[c + 1]; at = rowBase + c + 1; }
                if (r1[c] > best) { best = r1[c]; at = rowBase + w + c; }
                if (r1[c + 1] > best) { best = r1[c + 1]; at = rowBase + w + c + 1; }
                yo[j] = best; ao[j] = at;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector256<float> Even, Vector256<float> Odd) SplitEvenOdd(Vector256<float> lo, Vector256<float> hi)
    {
        // Shuffle within 128-bit halves gives [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; the 64-bit permute restores order.
        var even = System.Runtime.Intrinsics.X86.Avx.Shuffle(lo, hi, 0b10_00_10_00);
        var odd = System.Runtime.Intrinsics.X86.Avx.Shuffle(lo, hi, 0b11_01_11_01);
        return (System.Runtime.Intrinsics.X86.Avx2.Permute4x64(even.AsDouble(), 0b11_01_10_00).AsSingle(),
                System.Runtime.Intrinsics.X86.Avx2.Permute4x64(odd.AsDouble(), 0b11_01_10_00).AsSingle());
    }

    /// <summary>Where the candidate is strictly greater, it and its index replace the best so far.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Take(ref Vector256<float> best, ref Vector256<int> at, Vector256<float> candidate, Vector256<int> index)
    {
        var greater = Vector256.GreaterThan(candidate, best);
        best = Vector256.ConditionalSelect(greater, candidate, best);
        at = Vector256.ConditionalSelect(greater.AsInt32(), index, at);
    }

    protected override void Pool2dBackwardCore(in PoolSpec s, DeviceBuffer<float> dy, DeviceBuffer<int>? argMax, DeviceBuffer<float> dx, bool accumulate)
    {
        var spec = s;
        float* gp = P(dy), dxp = P(dx);
        int* ap = argMax == null ? null : P(argMax);
        int ohw = s.OutH * s.OutW, hw = s.H * s.W;
        float invArea = 1f / (s.Kernel * s.Kernel);
        _parallel.For(s.N * s.C, (long)ohw * s.Kernel * s.Kernel, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                float* ds = dxp + (long)p * hw, gs = gp + (long)p * ohw;
                if (!accumulate) new Span<float>(ds, hw).Clear();
                if (spec.Op == PoolOp.Max)
                {
                    int* a = ap + (long)p * ohw;
                    for (int o = 0; o < ohw; o++) ds[a[o]] += gs[o];
                    continue;
                }
                for (int i = 0; i < spec.OutH; i++)
                    for (int j = 0; j < spec.OutW; j++)
                    {
                        float g = gs[i * spec.OutW + j] * invArea;
                        for (int r = 0; r < spec.Kernel; r++)
                        {
                            int ih = i * spec.Stride - spec.Pad + r;
                            if ((uint)ih >= (uint)spec.H) continue;
                            for (int q = 0; q < spec.Kernel; q++)
                            {
                                int iw = j * spec.Stride - spec.Pad + q;
                                if ((uint)iw < (uint)spec.W) ds[ih * spec.W + iw] += g;
                            }
                        }
                    }
            }
        });
    }
}
