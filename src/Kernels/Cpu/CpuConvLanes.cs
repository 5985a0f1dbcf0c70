using System.Runtime.CompilerServices;

namespace LsKd.Kernels.Cpu;

/// <summary>
/// The <see cref="ConvAlgorithm.Lanes"/> convolutions: output channels in the vector lanes, for small outputs
/// (7x7 at stride 1, up to 14x14 at stride 2). The grid (<see cref="ConvGrid"/>) computes its GridW - OutW extra
/// columns per row and rounds rows to whole vectors, so a 7x7 output wastes a quarter of its work. Here each tap
/// (c, r, s) loads the transposed weights w[c, r, s, k..] once and multiplies them by broadcast input pixels of
/// 7 output positions of one row, so every lane is a real output and no column matrix is built. Results go to a
/// per-image [position, channel] scratch and are transposed into NCHW. Also here: the 3x3 weight gradient and the
/// strided input gradient built on the same idea. Kernels take one or two vectors of channels (16 or 32 channels
/// on Vector512, 8 or 16 on Vector256).
/// </summary>
public unsafe partial class CpuBackend
{
    /// <summary>Bytes of transposed weights one input-channel chunk of the lanes forward may use (half of a 48 KiB L1).</summary>
    const int LanesWeightBudget = 24 * 1024;

    void ForwardLanes(ConvSpec spec, float* xp, float* wp, float* yp, bool accumulate, double* rowStats = null)
    {
        if (_use512) ForwardLanes<V512>(spec, xp, wp, yp, accumulate, rowStats);
        else ForwardLanes<V256>(spec, xp, wp, yp, accumulate, rowStats);
    }

    /// <summary>y (+)= conv(x, w); the output width is a multiple of 7 and K/G of 16. With rowStats (not accumulating),
    /// each output row's (mean, M2) is formed right after the image's rows are written.</summary>
    void ForwardLanes<TV>(ConvSpec spec, float* xp, float* wp, float* yp, bool accumulate, double* rowStats) where TV : struct, ISimd<TV>
    {
        int outH = spec.OutH, outW = spec.OutW;   // derived sizes are computed properties (divisions): read once
        int kg = spec.KPerGroup, cg = spec.CPerGroup, ckk = cg * spec.R * spec.S, ohw = outH * outW;
        int hp = spec.H + 2 * spec.Pad, wpad = spec.W + 2 * spec.Pad, plane = hp * wpad, hw = spec.H * spec.W;
        float[] wT = TransposeWeights(wp, spec.Groups, kg, ckk);
        int chunk = Math.Max(1, LanesWeightBudget / (spec.R * spec.S * kg * sizeof(float)));
        ForImages(spec.N, 1, (worker, blocks) =>
        {
            long planesSize = (long)cg * plane + 16;
            float* planes = ColScratch(planesSize + (long)ohw * kg, out _);
            float* outT = planes + planesSize;
            new Span<float>(planes, (int)planesSize).Clear();   // the padding stays zero: only interior pixels are written
            fixed (float* wt = wT)
            while (blocks.Take(out _, out int n0, out int n1))
                for (int n = n0; n < n1; n++)
                    for (int g = 0; g < spec.Groups; g++)
                    {
                        // The next image comes from memory: fetched into L2 while this one computes.
                        if (g == 0 && n + 1 < spec.N) PrefetchPart(xp + (long)(n + 1) * spec.C * hw, (long)spec.C * hw, 0, 1);
                        float* xg = xp + ((long)n * spec.C + g * cg) * hw;
                        for (int c = 0; c < cg; c++)
                            for (int i = 0; i < spec.H; i++)
                                CopyRun(xg + (long)c * hw + i * spec.W, planes + (long)c * plane + (i + spec.Pad) * wpad + spec.Pad, spec.W);
                        // Input channels in chunks whose weights (all output channels) stay in L1 while every output
                        // position uses them: unchunked, a 64-channel 3x3 layer streams 147 KB of weights from L2 for
                        // each 7 positions. Later chunks add into the partial sums.
                        for (int c0 = 0; c0 < cg; c0 += chunk)
                        {
                            int cn = Math.Min(chunk, cg - c0);
                            float* wg = wt + ((long)g * ckk + (long)c0 * spec.R * spec.S) * kg;
                            float* xc = planes + (long)c0 * plane;
                            for (int oh = 0; oh < outH; oh++)
                            {
                                float* xrow = xc + oh * spec.Stride * wpad;
                                float* orow = outT + (long)oh * outW * kg;
                                for (int ow = 0; ow < outW; ow += 7)
                                    for (int k = 0; k < kg;)
                                        if (kg - k >= 2 * TV.Count)
                                        {
                                            LanesPairP7<TV>(wg + k, kg, cn, spec.R, spec.S, xrow + ow * spec.Stride, plane, wpad, spec.Stride, orow + ow * kg + k, kg, c0 > 0);
                                            k += 2 * TV.Count;
                                        }
                                        else
                                        {
                                            LanesOneP7<TV>(wg + k, kg, cn, spec.R, spec.S, xrow + ow * spec.Stride, plane, wpad, spec.Stride, orow + ow * kg + k, kg, c0 > 0);
                                            k += TV.Count;
                                        }
                            }
                        }
                        float* yg = yp + ((long)n * spec.K + g * kg) * ohw;
                        TransposeInto(outT, yg, ohw, kg, ohw, accumulate);
                        if (rowStats != null)
                            for (int k = 0; k < kg; k++) RowStats<TV>(yg + (long)k * ohw, ohw, rowStats + 2 * ((long)n * spec.K + g * kg + k));
                    }
        });
    }

    /// <summary>dst[k ldd + p] (+)= src[p, k] for a [positions, channels] block.</summary>
    static void TransposeInto(float* src, float* dst, int positions, int channels, int ldd, bool accumulate)
    {
        for (int p0 = 0; p0 < positions; p0 += 8)
        {
            int p1 = Math.Min(p0 + 8, positions);
            for (int k = 0; k < channels; k++)
            {
                float* d = dst + (long)k * ldd;
                if (accumulate) for (int p = p0; p < p1; p++) d[p] += src[(long)p * channels + k];
                else for (int p = p0; p < p1; p++) d[p] = src[(long)p * channels + k];
            }
        }
    }

    /// <summary>o[p, 0..2 lanes) = sum over taps (c, r, s) of w[tap, 0..2 lanes) x[c, r, p st + s] for 7 positions p:
    /// 14 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void LanesPairP7<TV>(float* w, int ldw, int cg, int kr, int ks, float* x, int plane, int wpad, int st, float* o, int ldo, bool add = false) where TV : struct, ISimd<TV>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default;
        TV b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default;
        int h = TV.Count;
        if (add)
        {
            float* p = o;
            a0 = TV.Load(p); b0 = TV.Load(p + h); p += ldo; a1 = TV.Load(p); b1 = TV.Load(p + h); p += ldo;
            a2 = TV.Load(p); b2 = TV.Load(p + h); p += ldo; a3 = TV.Load(p); b3 = TV.Load(p + h); p += ldo;
            a4 = TV.Load(p); b4 = TV.Load(p + h); p += ldo; a5 = TV.Load(p); b5 = TV.Load(p + h); p += ldo;
            a6 = TV.Load(p); b6 = TV.Load(p + h);
        }
        float* wk = w;
        for (int c = 0; c < cg; c++)
            for (int r = 0; r < kr; r++)
            {
                float* xr = x + (long)c * plane + r * wpad;
                for (int s = 0; s < ks; s++, wk += ldw)
                {
                    var u = TV.Load(wk); var v = TV.Load(wk + TV.Count);
                    float* q = xr + s;
                    var e = TV.Splat(q[0]); a0 = TV.Fma(u, e, a0); b0 = TV.Fma(v, e, b0);
                    e = TV.Splat(q[st]); a1 = TV.Fma(u, e, a1); b1 = TV.Fma(v, e, b1);
                    e = TV.Splat(q[2 * st]); a2 = TV.Fma(u, e, a2); b2 = TV.Fma(v, e, b2);
                    e = TV.Splat(q[3 * st]); a3 = TV.Fma(u, e, a3); b3 = TV.Fma(v, e, b3);
                    e = TV.Splat(q[4 * st]); a4 = TV.Fma(u, e, a4); b4 = TV.Fma(v, e, b4);
                    e = TV.Splat(q[5 * st]); a5 = TV.Fma(u, e, a5); b5 = TV.Fma(v, e, b5);
                    e = TV.Splat(q[6 * st]); a6 = TV.Fma(u, e, a6); b6 = TV.Fma(v, e, b6);
                }
            }
        TV.Store(a0, o); TV.Store(b0, o + h); o += ldo;
        TV.Store(a1, o); TV.Store(b1, o + h); o += ldo;
        TV.Store(a2, o); TV.Store(b2, o + h); o += ldo;
        TV.Store(a3, o); TV.Store(b3, o + h); o += ldo;
        TV.Store(a4, o); TV.Store(b4, o + h); o += ldo;
        TV.Store(a5, o); TV.Store(b5, o + h); o += ldo;
        TV.Store(a6, o); TV.Store(b6, o + h);
    }

    /// <summary>One vector of channels: the single-vector case of <see cref="LanesPairP7"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void LanesOneP7<TV>(float* w, int ldw, int cg, int kr, int ks, float* x, int plane, int wpad, int st, float* o, int ldo, bool add = false) where TV : struct, ISimd<TV>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default;
        if (add)
        {
            float* p = o;
            a0 = TV.Load(p); p += ldo; a1 = TV.Load(p); p += ldo; a2 = TV.Load(p); p += ldo; a3 = TV.Load(p); p += ldo;
            a4 = TV.Load(p); p += ldo; a5 = TV.Load(p); p += ldo; a6 = TV.Load(p);
        }
        float* wk = w;
        for (int c = 0; c < cg; c++)
            for (int r = 0; r < kr; r++)
            {
                float* xr = x + (long)c * plane + r * wpad;
                for (int s = 0; s < ks; s++, wk += ldw)
                {
                    var u = TV.Load(wk);
                    float* q = xr + s;
                    a0 = TV.Fma(u, TV.Splat(q[0]), a0);
                    a1 = TV.Fma(u, TV.Splat(q[st]), a1);
                    a2 = TV.Fma(u, TV.Splat(q[2 * st]), a2);
                    a3 = TV.Fma(u, TV.Splat(q[3 * st]), a3);
                    a4 = TV.Fma(u, TV.Splat(q[4 * st]), a4);
                    a5 = TV.Fma(u, TV.Splat(q[5 * st]), a5);
                    a6 = TV.Fma(u, TV.Splat(q[6 * st]), a6);
                }
            }
        TV.Store(a0, o); o += ldo; TV.Store(a1, o); o += ldo; TV.Store(a2, o); o += ldo;
        TV.Store(a3, o); o += ldo; TV.Store(a4, o); o += ldo; TV.Store(a5, o); o += ldo;
        TV.Store(a6, o);
    }

    void WeightGradLanes(ConvSpec spec, float* xp, float* dyp, float* dwp, bool accumulate)
    {
        if (_use512) WeightGradLanes<V512>(spec, xp, dyp, dwp, accumulate);
        else WeightGradLanes<V256>(spec, xp, dyp, dwp, accumulate);
    }

    /// <summary>Weight gradient of a 3x3 convolution with 16-channel output blocks, lanes over output channels:
    /// dW[c, r, s, k..] += x[c, oh st + r, ow st + s] dy[k.., oh, ow] summed over positions, 9 (or 18) accumulators
    /// per input channel. dy is transposed per image to [position, channel]; workers sum their images into their own
    /// partials, added in worker order (deterministic).</summary>
    void WeightGradLanes<TV>(ConvSpec spec, float* xp, float* dyp, float* dwp, bool accumulate) where TV : struct, ISimd<TV>
    {
        int outH = spec.OutH, outW = spec.OutW;   // derived sizes are computed properties (divisions): read once
        int kg = spec.KPerGroup, cg = spec.CPerGroup, ckk = cg * 9, ohw = outH * outW;
        int hp = spec.H + 2 * spec.Pad, wpad = spec.W + 2 * spec.Pad, plane = hp * wpad, hw = spec.H * spec.W;
        long wsize = spec.WeightSize;
        var imageBlocks = new ImageBlocks(spec.N, 1);
        var partials = new float[imageBlocks.Count][];
        ForImages(imageBlocks, (worker, blocks) =>
        {
            long planesSize = (long)cg * plane + 16;
            float* planes = ColScratch(planesSize + (long)ohw * kg, out _);
            float* dyT = planes + planesSize;
            new Span<float>(planes, (int)planesSize).Clear();
            while (blocks.Take(out int block, out int n0, out int n1))
            fixed (float* pp = partials[block] = BlockPartial(block, (int)wsize))
                for (int n = n0; n < n1; n++)
                    for (int g = 0; g < spec.Groups; g++)
                    {
                        if (g == 0 && n + 1 < spec.N)   // the next image and its dy, fetched into L2 while this one computes
                        {
                            PrefetchPart(xp + (long)(n + 1) * spec.C * hw, (long)spec.C * hw, 0, 1);
                            PrefetchPart(dyp + (long)(n + 1) * spec.K * ohw, (long)spec.K * ohw, 0, 1);
                        }
                        float* xg = xp + ((long)n * spec.C + g * cg) * hw, dyg = dyp + ((long)n * spec.K + g * kg) * ohw;
                        for (int c = 0; c < cg; c++)
                            for (int i = 0; i < spec.H; i++)
                                CopyRun(xg + (long)c * hw + i * spec.W, planes + (long)c * plane + (i + spec.Pad) * wpad + spec.Pad, spec.W);
                        for (int k = 0; k < kg; k++)
                        {
                            float* src = dyg + (long)k * ohw;
                            for (int p = 0; p < ohw; p++) dyT[(long)p * kg + k] = src[p];
                        }
                        float* pg = pp + (long)g * ckk * kg;
                        for (int c = 0; c < cg; c++)
                            for (int k = 0; k < kg;)
                                if (kg - k >= 2 * TV.Count)
                                {
                                    WGradPairR3<TV>(planes + (long)c * plane, wpad, spec.Stride, outH, outW, dyT + k, kg, pg + (long)c * 9 * kg + k, kg);
                                    k += 2 * TV.Count;
                                }
                                else
                                {
                                    WGradOneR3<TV>(planes + (long)c * plane, wpad, spec.Stride, outH, outW, dyT + k, kg, pg + (long)c * 9 * kg + k, kg);
                                    k += TV.Count;
                                }
                    }
        });
        WriteWeightGradient(partials, spec, dwp, transposed: true, accumulate);   // partials are [g][c r s][k]
    }

    /// <summary>o[tap, 0..2 lanes) += sum over positions of x[oh st + r, ow st + s] dy[position, 0..2 lanes) for the 9 taps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void WGradPairR3<TV>(float* x, int wpad, int st, int outH, int outW, float* dy, int ldd, float* o, int ldo) where TV : struct, ISimd<TV>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default, a8 = default;
        TV b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default, b8 = default;
        float* d = dy;
        for (int oh = 0; oh < outH; oh++)
        {
            float* xr = x + oh * st * wpad;
            for (int ow = 0; ow < outW; ow++, d += ldd)
            {
                var u = TV.Load(d); var v = TV.Load(d + TV.Count);
                float* q0 = xr + ow * st, q1 = q0 + wpad, q2 = q1 + wpad;
                var e = TV.Splat(q0[0]); a0 = TV.Fma(e, u, a0); b0 = TV.Fma(e, v, b0);
                e = TV.Splat(q0[1]); a1 = TV.Fma(e, u, a1); b1 = TV.Fma(e, v, b1);
                e = TV.Splat(q0[2]); a2 = TV.Fma(e, u, a2); b2 = TV.Fma(e, v, b2);
                e = TV.Splat(q1[0]); a3 = TV.Fma(e, u, a3); b3 = TV.Fma(e, v, b3);
                e = TV.Splat(q1[1]); a4 = TV.Fma(e, u, a4); b4 = TV.Fma(e, v, b4);
                e = TV.Splat(q1[2]); a5 = TV.Fma(e, u, a5); b5 = TV.Fma(e, v, b5);
                e = TV.Splat(q2[0]); a6 = TV.Fma(e, u, a6); b6 = TV.Fma(e, v, b6);
                e = TV.Splat(q2[1]); a7 = TV.Fma(e, u, a7); b7 = TV.Fma(e, v, b7);
                e = TV.Splat(q2[2]); a8 = TV.Fma(e, u, a8); b8 = TV.Fma(e, v, b8);
            }
        }
        AddTo(o, a0, b0); AddTo(o + ldo, a1, b1); AddTo(o + 2 * ldo, a2, b2); AddTo(o + 3 * ldo, a3, b3); AddTo(o + 4 * ldo, a4, b4);
        AddTo(o + 5 * ldo, a5, b5); AddTo(o + 6 * ldo, a6, b6); AddTo(o + 7 * ldo, a7, b7); AddTo(o + 8 * ldo, a8, b8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AddTo<TV>(float* o, TV a, TV b) where TV : struct, ISimd<TV>
    {
        TV.Store(TV.Add(TV.Load(o), a), o);
        TV.Store(TV.Add(TV.Load(o + TV.Count), b), o + TV.Count);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AddTo<TV>(float* o, TV a) where TV : struct, ISimd<TV> => TV.Store(TV.Add(TV.Load(o), a), o);

    /// <summary>One vector of channels: the single-vector case of <see cref="WGradPairR3"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void WGradOneR3<TV>(float* x, int wpad, int st, int outH, int outW, float* dy, int ldd, float* o, int ldo) where TV : struct, ISimd<TV>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default, a8 = default;
        float* d = dy;
        for (int oh = 0; oh < outH; oh++)
        {
            float* xr = x + oh * st * wpad;
            for (int ow = 0; ow < outW; ow++, d += ldd)
            {
                var u = TV.Load(d);
                float* q0 = xr + ow * st, q1 = q0 + wpad, q2 = q1 + wpad;
                a0 = TV.Fma(TV.Splat(q0[0]), u, a0); a1 = TV.Fma(TV.Splat(q0[1]), u, a1);
                a2 = TV.Fma(TV.Splat(q0[2]), u, a2); a3 = TV.Fma(TV.Splat(q1[0]), u, a3);
                a4 = TV.Fma(TV.Splat(q1[1]), u, a4); a5 = TV.Fma(TV.Splat(q1[2]), u, a5);
                a6 = TV.Fma(TV.Splat(q2[0]), u, a6); a7 = TV.Fma(TV.Splat(q2[1]), u, a7);
                a8 = TV.Fma(TV.Splat(q2[2]), u, a8);
            }
        }
        AddTo(o, a0); AddTo(o + ldo, a1); AddTo(o + 2 * ldo, a2); AddTo(o + 3 * ldo, a3); AddTo(o + 4 * ldo, a4);
        AddTo(o + 5 * ldo, a5); AddTo(o + 6 * ldo, a6); AddTo(o + 7 * ldo, a7); AddTo(o + 8 * ldo, a8);
    }

    float[] _wS = [];

    void BackwardInputLanes(ConvSpec spec, float* dyp, float* wp, float* dxp, bool accumulate)
    {
        if (_use512) BackwardInputLanes<V512>(spec, dyp, wp, dxp, accumulate);
        else BackwardInputLanes<V256>(spec, dyp, wp, dxp, accumulate);
    }

    /// <summary>The input gradient as a scatter, lanes over input channels (C/G a multiple of 32): for each tap
    /// (r, s) and 7 output positions, t[p, c..] = sum over k of w[k, c.., r, s] dy[k, p] (the forward lanes kernel
    /// with one tap and the output channels as its reduction), added into a padded channels-last dx at
    /// (oh st + r, ow st + s), then transposed into NCHW.</summary>
    void BackwardInputLanes<TV>(ConvSpec spec, float* dyp, float* wp, float* dxp, bool accumulate) where TV : struct, ISimd<TV>
    {
        int outH = spec.OutH, outW = spec.OutW;   // derived sizes are computed properties (divisions): read once
        int kg = spec.KPerGroup, cg = spec.CPerGroup, rs = spec.R * spec.S, ohw = outH * outW;
        int hp = spec.H + 2 * spec.Pad, wpad = spec.W + 2 * spec.Pad, hw = spec.H * spec.W, st = spec.Stride;
        int block = 2 * TV.Count;
        long wsize = spec.WeightSize;
        if (_wS.Length < wsize) _wS = GC.AllocateArray<float>((int)wsize, pinned: true);
        var wS = _wS;   // [g][r][s][k][c]
        for (int g = 0; g < spec.Groups; g++)
            for (int k = 0; k < kg; k++)
                for (int c = 0; c < cg; c++)
                    for (int t = 0; t < rs; t++)
                        wS[(((long)g * rs + t) * kg + k) * cg + c] = wp[(((long)g * kg + k) * cg + c) * rs + t];
        ForImages(spec.N, 1, (worker, blocks) =>
        {
            long dxSize = (long)hp * wpad * cg;
            float* dxT = ColScratch(dxSize + 7 * block, out _);
            float* tmp = dxT + dxSize;
            fixed (float* ws = wS)
            while (blocks.Take(out _, out int n0, out int n1))
                for (int n = n0; n < n1; n++)
                    for (int g = 0; g < spec.Groups; g++)
                    {
                        new Span<float>(dxT, (int)dxSize).Clear();
                        if (g == 0 && n + 1 < spec.N) PrefetchPart(dyp + (long)(n + 1) * spec.K * ohw, (long)spec.K * ohw, 0, 1);
                        float* dyg = dyp + ((long)n * spec.K + g * kg) * ohw;
                        for (int oh = 0; oh < outH; oh++)
                            for (int ow = 0; ow < outW; ow += 7)
                                for (int r = 0; r < spec.R; r++)
                                    for (int q = 0; q < spec.S; q++)
                                    {
                                        float* wt = ws + ((long)g * rs + r * spec.S + q) * kg * cg;
                                        float* dst = dxT + ((long)(oh * st + r) * wpad + ow * st + q) * cg;
                                        for (int c = 0; c < cg; c += block)
                                        {
                                            LanesPairP7<TV>(wt + c, cg, kg, 1, 1, dyg + oh * outW + ow, ohw, 0, 1, tmp, block);
                                            for (int p = 0; p < 7; p++)
                                                AddTo(dst + (long)p * st * cg + c, TV.Load(tmp + p * block), TV.Load(tmp + p * block + TV.Count));
                                        }
                                    }
                        float* dxg = dxp + ((long)n * spec.C + g * cg) * hw;
                        for (int i = 0; i < spec.H; i++)
                            TransposeInto(dxT + ((long)(i + spec.Pad) * wpad + spec.Pad) * cg, dxg + (long)i * spec.W, spec.W, cg, hw, accumulate);
                    }
        });
    }
}
