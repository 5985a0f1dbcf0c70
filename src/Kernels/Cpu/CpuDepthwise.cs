using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Depthwise convolutions (one input channel per group, MobileNetV2's 3x3 layers). Their GEMMs would be
/// 1 x R S, so they run directly. <see cref="ConvAlgorithm.Depthwise"/> (stride 1 and 2) works on the plane's
/// <see cref="ConvGrid"/>: output position u of the grid is sum over taps t of w_t planes[Offsets[t] + u], so a
/// vector of outputs takes one load and one FMA per tap with the taps' weights in registers and the plane in L1.
/// <see cref="ConvAlgorithm.DepthwiseLoops"/> (any stride) is the plain per-row fallback.</summary>
public unsafe partial class CpuBackend
{
    void DepthwiseForward(ConvSpec s, float* x, float* w, float* y, bool accumulate, bool flip)
    {
        if (_use512) DepthwiseForward<V512>(s, x, w, y, accumulate, flip);
        else DepthwiseForward<V256>(s, x, w, y, accumulate, flip);
    }

    /// <summary>y (+)= the depthwise convolution of x, per plane: fill the grid, compute, compact. 3x3 kernels roll
    /// down the rows a vector of columns at a time (each input row is loaded once per tap column and used by every
    /// output row it touches; stride 2 reads the column phases); other kernels sum shifted slices of the grid.
    /// With flip, kernel element (r, q) is read as (R-1-r, S-1-q) (the stride-1 input gradient).</summary>
    void DepthwiseForward<TV>(ConvSpec s, float* x, float* w, float* y, bool accumulate, bool flip) where TV : struct, ISimd<TV>
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        var grid = Grid(s);
        int hw = s.H * s.W, ohw = outH * outW, rs = s.R * s.S, wideV = (grid.Wide + TV.Count - 1) / TV.Count * TV.Count;
        bool rolling = s.R == 3 && s.S == 3;
        int ldo = rolling ? (outW + TV.Count - 1) / TV.Count * TV.Count : grid.GridW;
        long slot = (grid.ScratchSize + 15) / 16 * 16, outSize = Math.Max(wideV, (long)outH * ldo);
        long phaseSize = (long)grid.PhaseH * grid.PhaseW;
        // Rows of one vector each written straight into y need the spill of row outH - 2 to stay in the plane.
        bool direct = rolling && !accumulate && outW <= TV.Count && TV.Count <= 2 * outW;
        _parallel.For(s.N * s.C, (long)ohw * rs * 2, (p0, p1) =>
        {
            float* planes = ColScratch(slot + outSize + 16, out _), output = planes + slot;
            new Span<float>(planes, (int)slot).Clear();   // the padding and tail stay zero: Fill writes the interior only
            Span<float> taps = stackalloc float[rs];
            fixed (int* offsets = grid.Offsets)
            fixed (float* tp = taps)
                for (int p = p0; p < p1; p++)
                {
                    float* wc = w + (long)(p % s.C) * rs;
                    for (int t = 0; t < rs; t++) tp[t] = flip ? wc[rs - 1 - t] : wc[t];
                    grid.Fill(s, x + (long)p * hw, planes);
                    float* yp = y + (long)p * ohw;
                    if (direct)
                    {
                        // One vector per row, written straight into y: each row's store runs Count - OutW floats into
                        // the next row, which is stored after it; the last row goes through the scratch.
                        if (s.Stride == 1) Rows3x3<TV>(planes, grid.Wp, outH, tp, yp, outW, output);
                        else Rows3x3Stride2<TV>(planes, phaseSize, grid.PhaseW, outH, tp, yp, outW, output);
                        CopyRun(output, yp + (long)(outH - 1) * outW, outW);
                        continue;
                    }
                    if (!rolling) ShiftedSum<TV>(planes, offsets, tp, rs, output, wideV);
                    else if (s.Stride == 1)
                        for (int j0 = 0; j0 < outW; j0 += TV.Count) Rows3x3<TV>(planes + j0, grid.Wp, outH, tp, output + j0, ldo, output + j0 + (long)(outH - 1) * ldo);
                    else
                        for (int j0 = 0; j0 < outW; j0 += TV.Count) Rows3x3Stride2<TV>(planes + j0, phaseSize, grid.PhaseW, outH, tp, output + j0, ldo, output + j0 + (long)(outH - 1) * ldo);
                    for (int i = 0; i < outH; i++)
                        if (accumulate) AddRun(yp + (long)i * outW, output + (long)i * ldo, outW);
                        else CopyRun(output + (long)i * ldo, yp + (long)i * outW, outW);
                }
        });
    }

    /// <summary>One vector of columns of a stride-1 3x3 depthwise convolution over all output rows: input row y is
    /// loaded at its three tap columns once and finishes output row y - 2, continues y - 1 and starts y. Output row i
    /// goes to o + i ldo, the last one to lastRow.</summary>
    static void Rows3x3<TV>(float* p, int ldp, int outH, float* w, float* o, int ldo, float* lastRow) where TV : struct, ISimd<TV>
    {
        TV w00 = TV.Splat(w[0]), w01 = TV.Splat(w[1]), w02 = TV.Splat(w[2]);
        TV w10 = TV.Splat(w[3]), w11 = TV.Splat(w[4]), w12 = TV.Splat(w[5]);
        TV w20 = TV.Splat(w[6]), w21 = TV.Splat(w[7]), w22 = TV.Splat(w[8]);
        // Row 0 starts output row 0; row 1 continues it and starts row 1.
        TV a1 = TV.Fma(w02, TV.Load(p + 2), TV.Fma(w01, TV.Load(p + 1), TV.Mul(w00, TV.Load(p))));
        p += ldp;
        TV v0 = TV.Load(p), v1 = TV.Load(p + 1), v2 = TV.Load(p + 2);
        a1 = TV.Fma(w12, v2, TV.Fma(w11, v1, TV.Fma(w10, v0, a1)));
        TV a0 = TV.Fma(w02, v2, TV.Fma(w01, v1, TV.Mul(w00, v0)));
        for (int i = 0; i < outH; i++, o += ldo)
        {
            p += ldp;
            v0 = TV.Load(p); v1 = TV.Load(p + 1); v2 = TV.Load(p + 2);
            TV.Store(TV.Fma(w22, v2, TV.Fma(w21, v1, TV.Fma(w20, v0, a1))), i == outH - 1 ? lastRow : o);
            a1 = TV.Fma(w12, v2, TV.Fma(w11, v1, TV.Fma(w10, v0, a0)));
            a0 = TV.Fma(w02, v2, TV.Fma(w01, v1, TV.Mul(w00, v0)));
        }
    }

    /// <summary>One vector of columns of a stride-2 3x3 depthwise convolution on the phase-split grid: padded
    /// column 2j + q is the even phase at j (q = 0), the odd phase at j (q = 1) or the even phase at j + 1 (q = 2).
    /// Row 2i + 2 finishes output row i and starts row i + 1.</summary>
    static void Rows3x3Stride2<TV>(float* planes, long phaseSize, int phaseW, int outH, float* w, float* o, int ldo, float* lastRow) where TV : struct, ISimd<TV>
    {
        TV w00 = TV.Splat(w[0]), w01 = TV.Splat(w[1]), w02 = TV.Splat(w[2]);
        TV w10 = TV.Splat(w[3]), w11 = TV.Splat(w[4]), w12 = TV.Splat(w[5]);
        TV w20 = TV.Splat(w[6]), w21 = TV.Splat(w[7]), w22 = TV.Splat(w[8]);
        // Padded row y is row y / 2 of phases (y % 2, 0) and (y % 2, 1): even rows in phases 0 and 1, odd in 2 and 3.
        float* evenRows = planes, oddRows = planes + 2 * phaseSize;
        TV a = TV.Fma(w02, TV.Load(evenRows + 1), TV.Fma(w01, TV.Load(evenRows + phaseSize), TV.Mul(w00, TV.Load(evenRows))));
        for (int i = 0; i < outH; i++, o += ldo)
        {
            float* q = oddRows + (long)i * phaseW;
            a = TV.Fma(w12, TV.Load(q + 1), TV.Fma(w11, TV.Load(q + phaseSize), TV.Fma(w10, TV.Load(q), a)));
            q = evenRows + (long)(i + 1) * phaseW;
            TV v0 = TV.Load(q), v1 = TV.Load(q + phaseSize), v2 = TV.Load(q + 1);
            TV.Store(TV.Fma(w22, v2, TV.Fma(w21, v1, TV.Fma(w20, v0, a))), i == outH - 1 ? lastRow : o);
            a = TV.Fma(w02, v2, TV.Fma(w01, v1, TV.Mul(w00, v0)));
        }
    }

    /// <summary>out[u] = sum over t of w[t] src[offsets[t] + u] for u in [0, wide), wide a multiple of the vector
    /// width. Nine taps (3x3) keep their weights in registers.</summary>
    static void ShiftedSum<TV>(float* src, int* offsets, float* w, int taps, float* output, int wide) where TV : struct, ISimd<TV>
    {
        if (taps == 9)
        {
            TV w0 = TV.Splat(w[0]), w1 = TV.Splat(w[1]), w2 = TV.Splat(w[2]), w3 = TV.Splat(w[3]), w4 = TV.Splat(w[4]);
            TV w5 = TV.Splat(w[5]), w6 = TV.Splat(w[6]), w7 = TV.Splat(w[7]), w8 = TV.Splat(w[8]);
            float* s0 = src + offsets[0], s1 = src + offsets[1], s2 = src + offsets[2], s3 = src + offsets[3], s4 = src + offsets[4];
            float* s5 = src + offsets[5], s6 = src + offsets[6], s7 = src + offsets[7], s8 = src + offsets[8];
            for (int u = 0; u < wide; u += TV.Count)
            {
                // Two chains of FMAs, so the adds do not wait on one another.
                var a = TV.Mul(w0, TV.Load(s0 + u));
                var b = TV.Mul(w1, TV.Load(s1 + u));
                a = TV.Fma(w2, TV.Load(s2 + u), a); b = TV.Fma(w3, TV.Load(s3 + u), b);
                a = TV.Fma(w4, TV.Load(s4 + u), a); b = TV.Fma(w5, TV.Load(s5 + u), b);
                a = TV.Fma(w6, TV.Load(s6 + u), a); b = TV.Fma(w7, TV.Load(s7 + u), b);
                a = TV.Fma(w8, TV.Load(s8 + u), a);
                TV.Store(TV.Add(a, b), output + u);
            }
            return;
        }
        for (int u = 0; u < wide; u += TV.Count)
        {
            TV a = default;
            for (int t = 0; t < taps; t++) a = TV.Fma(TV.Splat(w[t]), TV.Load(src + offsets[t] + u), a);
            TV.Store(a, output + u);
        }
    }

    void DepthwiseBackwardInput(ConvSpec s, float* dy, float* w, float* dx, bool accumulate)
    {
        // Stride 1, square kernel: the depthwise convolution of dy with the flipped kernel (a gather, in registers).
        if (ConvPlanner.Flippable(s)) { DepthwiseForward(ConvPlanner.Adjoint(s), dy, w, dx, accumulate, flip: true); return; }
        bool gather = s.Stride == 2 && s.R == 3 && s.S == 3;
        if (_use512) { if (gather) DepthwiseGatherStride2<V512>(s, dy, w, dx, accumulate); else DepthwiseScatter<V512>(s, dy, w, dx, accumulate); }
        else if (gather) DepthwiseGatherStride2<V256>(s, dy, w, dx, accumulate);
        else DepthwiseScatter<V256>(s, dy, w, dx, accumulate);
    }

    /// <summary>The stride-2 3x3 input gradient as a gather on the phase-split grid, each phase row computed once in
    /// registers (no read-modify-write): padded row y gets taps r with y - r even from dy row (y - r) / 2; in the
    /// even column phase taps q = 0 (dy column m) and q = 2 (column m - 1), in the odd phase tap q = 1. dy sits in
    /// a zero-bordered grid (a row above and below, a column on the left), so every read is unconditional.</summary>
    void DepthwiseGatherStride2<TV>(ConvSpec s, float* dy, float* w, float* dx, bool accumulate) where TV : struct, ISimd<TV>
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        var grid = Grid(s);
        int hw = s.H * s.W, ohw = outH * outW, hp = grid.Hp, phaseH = grid.PhaseH, channels = s.C;
        int ldp = (grid.PhaseW + TV.Count - 1) / TV.Count * TV.Count;           // gradient phase rows: whole vectors
        int ldg = ldp + TV.Count;                                               // dy grid rows: column -1 at index 0
        long phaseSize = (long)phaseH * ldp, planesSize = 4 * phaseSize, gridSize = (long)(outH + 2) * ldg + TV.Count;
        _parallel.For(s.N * channels, (long)ohw * 18, (p0, p1) =>
        {
            float* dPlanes = ColScratch(planesSize + gridSize + 16, out _), dyGrid = dPlanes + planesSize;
            new Span<float>(dyGrid, (int)gridSize).Clear();   // the border stays zero: rows 1..outH, columns 1..outW are written
            for (int p = p0; p < p1; p++)
            {
                float* wc = w + (long)(p % channels) * 9, dyp = dy + (long)p * ohw;
                for (int i = 0; i < outH; i++) CopyRun(dyp + (long)i * outW, dyGrid + (long)(i + 1) * ldg + 1, outW);
                TV w00 = TV.Splat(wc[0]), w01 = TV.Splat(wc[1]), w02 = TV.Splat(wc[2]), w10 = TV.Splat(wc[3]), w11 = TV.Splat(wc[4]);
                TV w12 = TV.Splat(wc[5]), w20 = TV.Splat(wc[6]), w21 = TV.Splat(wc[7]), w22 = TV.Splat(wc[8]);
                for (int y = 0; y < hp; y++)
                {
                    float* even = dPlanes + (y % 2 * 2) * phaseSize + (long)(y / 2) * ldp, odd = even + phaseSize;
                    if (y % 2 == 0)
                    {
                        float* a = dyGrid + (long)(y / 2 + 1) * ldg + 1, b = a - ldg;   // dy rows y/2 (r = 0) and y/2 - 1 (r = 2)
                        for (int m = 0; m < ldp; m += TV.Count)
                        {
                            TV a0 = TV.Load(a + m), a1 = TV.Load(a + m - 1), b0 = TV.Load(b + m), b1 = TV.Load(b + m - 1);
                            TV.Store(TV.Fma(w22, b1, TV.Fma(w20, b0, TV.Fma(w02, a1, TV.Mul(w00, a0)))), even + m);
                            TV.Store(TV.Fma(w21, b0, TV.Mul(w01, a0)), odd + m);
                        }
                    }
                    else
                    {
                        float* c = dyGrid + (long)((y - 1) / 2 + 1) * ldg + 1;          // dy row (y - 1)/2 (r = 1)
                        for (int m = 0; m < ldp; m += TV.Count)
                        {
                            TV c0 = TV.Load(c + m), c1 = TV.Load(c + m - 1);
                            TV.Store(TV.Fma(w12, c1, TV.Mul(w10, c0)), even + m);
                            TV.Store(TV.Mul(w11, c0), odd + m);
                        }
                    }
                }
                grid.Extract(s, dPlanes, dx + (long)p * hw, accumulate, ldp);
            }
        });
    }

    /// <summary>The adjoint of <see cref="DepthwiseForward{TV}"/> on the grid: dy is laid out on the grid (zeros in
    /// the extra columns), each tap adds w_t dy into the plane gradient at Offsets[t], and the plane gradient is
    /// read back through the padding and phases into dx.</summary>
    void DepthwiseScatter<TV>(ConvSpec s, float* dy, float* w, float* dx, bool accumulate) where TV : struct, ISimd<TV>
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        var grid = Grid(s);
        int hw = s.H * s.W, ohw = outH * outW, rs = s.R * s.S, wideV = (grid.Wide + TV.Count - 1) / TV.Count * TV.Count;
        long slot = (grid.ScratchSize + wideV + 15) / 16 * 16;
        _parallel.For(s.N * s.C, (long)grid.Wide * rs * 2, (p0, p1) =>
        {
            float* dPlanes = ColScratch(slot + wideV + 16, out _), dyGrid = dPlanes + slot;
            new Span<float>(dyGrid, wideV).Clear();   // the extra columns stay zero
            fixed (int* offsets = grid.Offsets)
                for (int p = p0; p < p1; p++)
                {
                    float* wc = w + (long)(p % s.C) * rs, dyp = dy + (long)p * ohw;
                    for (int i = 0; i < outH; i++) CopyRun(dyp + (long)i * outW, dyGrid + (long)i * grid.GridW, outW);
                    new Span<float>(dPlanes, (int)slot).Clear();
                    for (int t = 0; t < rs; t++)
                    {
                        var wt = TV.Splat(wc[t]);
                        float* d = dPlanes + offsets[t];
                        for (int u = 0; u < wideV; u += TV.Count) TV.Store(TV.Fma(wt, TV.Load(dyGrid + u), TV.Load(d + u)), d + u);
                    }
                    grid.Extract(s, dPlanes, dx + (long)p * hw, accumulate);
                }
        });
    }

    void DepthwiseWeightGrad(ConvSpec s, float* x, float* dy, float* dw, bool accumulate)
    {
        if (_use512) DepthwiseWeightGrad<V512>(s, x, dy, dw, accumulate);
        else DepthwiseWeightGrad<V256>(s, x, dy, dw, accumulate);
    }

    /// <summary>dw[c, t] = sum over images of dot(dy on the grid, planes shifted by Offsets[t]). Parallel over
    /// channels; a worker walks its channels image by image (memory order) and keeps a vector of partial sums per
    /// (channel, tap), summed across lanes at the end: the order is fixed, so the result is deterministic.</summary>
    void DepthwiseWeightGrad<TV>(ConvSpec s, float* x, float* dy, float* dw, bool accumulate) where TV : struct, ISimd<TV>
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        var grid = Grid(s);
        int n = s.N, channels = s.C, hw = s.H * s.W, ohw = outH * outW, rs = s.R * s.S, gridW = grid.GridW;
        int wideV = (grid.Wide + TV.Count - 1) / TV.Count * TV.Count;
        long slot = (grid.ScratchSize + 15) / 16 * 16;
        _parallel.For(channels, (long)n * grid.Wide * rs * 2, (c0, c1) =>
        {
            long lanesSize = (long)(c1 - c0) * rs * TV.Count;
            float* planes = ColScratch(slot + wideV + lanesSize + 16, out _), dyGrid = planes + slot, lanes = dyGrid + wideV;
            new Span<float>(planes, (int)(slot + wideV + lanesSize)).Clear();   // padding, tail and extra columns stay zero
            fixed (int* offsets = grid.Offsets)
                for (int image = 0; image < n; image++)
                    for (int c = c0; c < c1; c++)
                    {
                        long p = (long)image * channels + c;
                        grid.Fill(s, x + p * hw, planes);
                        for (int i = 0; i < outH; i++) CopyRun(dy + p * ohw + (long)i * outW, dyGrid + (long)i * gridW, outW);
                        ShiftedDotLanes<TV>(planes, offsets, rs, dyGrid, wideV, lanes + (long)(c - c0) * rs * TV.Count);
                    }
            for (int c = c0; c < c1; c++)
                for (int t = 0; t < rs; t++)
                {
                    float v = TV.Sum(TV.Load(lanes + ((long)(c - c0) * rs + t) * TV.Count));
                    float* d = dw + (long)c * rs + t;
                    *d = accumulate ? *d + v : v;
                }
        });
    }

    /// <summary>lanes[t] += g * (src + offsets[t]) over wide floats (a multiple of the vector width), lane by lane:
    /// a vector of partial dot products per tap. Nine taps keep nine accumulators and load g once.</summary>
    static void ShiftedDotLanes<TV>(float* src, int* offsets, int taps, float* g, int wide, float* lanes) where TV : struct, ISimd<TV>
    {
        if (taps == 9)
        {
            TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default, a8 = default;
            float* s0 = src + offsets[0], s1 = src + offsets[1], s2 = src + offsets[2], s3 = src + offsets[3], s4 = src + offsets[4];
            float* s5 = src + offsets[5], s6 = src + offsets[6], s7 = src + offsets[7], s8 = src + offsets[8];
            for (int u = 0; u < wide; u += TV.Count)
            {
                var v = TV.Load(g + u);
                a0 = TV.Fma(v, TV.Load(s0 + u), a0); a1 = TV.Fma(v, TV.Load(s1 + u), a1); a2 = TV.Fma(v, TV.Load(s2 + u), a2);
                a3 = TV.Fma(v, TV.Load(s3 + u), a3); a4 = TV.Fma(v, TV.Load(s4 + u), a4); a5 = TV.Fma(v, TV.Load(s5 + u), a5);
                a6 = TV.Fma(v, TV.Load(s6 + u), a6); a7 = TV.Fma(v, TV.Load(s7 + u), a7); a8 = TV.Fma(v, TV.Load(s8 + u), a8);
            }
            int c = TV.Count;
            AddTo(lanes, a0); AddTo(lanes + c, a1); AddTo(lanes + 2 * c, a2); AddTo(lanes + 3 * c, a3); AddTo(lanes + 4 * c, a4);
            AddTo(lanes + 5 * c, a5); AddTo(lanes + 6 * c, a6); AddTo(lanes + 7 * c, a7); AddTo(lanes + 8 * c, a8);
            return;
        }
        for (int t = 0; t < taps; t++)
        {
            TV a = default;
            float* st = src + offsets[t];
            for (int u = 0; u < wide; u += TV.Count) a = TV.Fma(TV.Load(g + u), TV.Load(st + u), a);
            AddTo(lanes + t * TV.Count, a);
        }
    }

    // ---- DepthwiseLoops: any stride ----------------------------------------------------------------------------

    void DepthwiseLoopsForward(ConvSpec s, float* x, float* w, float* y)
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        int ohw = outH * outW, hw = s.H * s.W, rs = s.R * s.S;
        _parallel.For(s.N * s.C, (long)ohw * rs * 2, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int c = p % s.C;
                float* xs = x + (long)p * hw, ys = y + (long)p * ohw, wc = w + (long)c * rs;
                new Span<float>(ys, ohw).Clear();
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                    {
                        float wv = wc[r * s.S + q];
                        (int lo, int hi) = ValidRange(outW, s.Stride, q - s.Pad, s.W);
                        for (int i = 0; i < outH; i++)
                        {
                            int ih = i * s.Stride - s.Pad + r;
                            if ((uint)ih >= (uint)s.H) continue;
                            float* src = xs + (long)ih * s.W + q - s.Pad, dst = ys + (long)i * outW;
                            if (s.Stride == 1) Axpy(dst + lo, src + lo, wv, hi - lo);
                            else for (int j = lo; j < hi; j++) dst[j] += wv * src[j * s.Stride];
                        }
                    }
            }
        });
    }

    void DepthwiseLoopsBackwardInput(ConvSpec s, float* dy, float* w, float* dx, bool accumulate)
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        int ohw = outH * outW, hw = s.H * s.W, rs = s.R * s.S;
        _parallel.For(s.N * s.C, (long)ohw * rs * 2, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int c = p % s.C;
                float* gs = dy + (long)p * ohw, ds = dx + (long)p * hw, wc = w + (long)c * rs;
                if (!accumulate) new Span<float>(ds, hw).Clear();
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                    {
                        float wv = wc[r * s.S + q];
                        (int lo, int hi) = ValidRange(outW, s.Stride, q - s.Pad, s.W);
                        for (int i = 0; i < outH; i++)
                        {
                            int ih = i * s.Stride - s.Pad + r;
                            if ((uint)ih >= (uint)s.H) continue;
                            float* dst = ds + (long)ih * s.W + q - s.Pad, src = gs + (long)i * outW;
                            if (s.Stride == 1) Axpy(dst + lo, src + lo, wv, hi - lo);
                            else for (int j = lo; j < hi; j++) dst[j * s.Stride] += wv * src[j];
                        }
                    }
            }
        });
    }

    void DepthwiseLoopsWeightGrad(ConvSpec s, float* x, float* dy, float* dw, bool accumulate)
    {
        int outH = s.OutH, outW = s.OutW;   // derived sizes are computed properties (divisions): read once
        int ohw = outH * outW, hw = s.H * s.W, rs = s.R * s.S;
        // Parallel over channels; each channel sums its images in order, so the result is deterministic.
        _parallel.For(s.C, (long)s.N * ohw * rs * 2, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                    {
                        (int lo, int hi) = ValidRange(outW, s.Stride, q - s.Pad, s.W);
                        double acc = 0;
                        for (int n = 0; n < s.N; n++)
                        {
                            long p = (long)n * s.C + c;
                            for (int i = 0; i < outH; i++)
                            {
                                int ih = i * s.Stride - s.Pad + r;
                                if ((uint)ih >= (uint)s.H) continue;
                                float* src = x + p * hw + (long)ih * s.W + q - s.Pad, g = dy + p * ohw + (long)i * outW;
                                acc += s.Stride == 1 ? Dot(g + lo, src + lo, hi - lo) : StridedDot(g, src, lo, hi, s.Stride);
                            }
                        }
                        float* d = dw + (long)c * rs + r * s.S + q;
                        *d = accumulate ? *d + (float)acc : (float)acc;
                    }
        });
    }

    static void Axpy(float* y, float* x, float a, int n)
    {
        int i = 0;
        var va = Vector256.Create(a);
        for (; i <= n - 8; i += 8)
            Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(x + i), va, Vector256.Load(y + i)), y + i);
        for (; i < n; i++) y[i] += a * x[i];
    }

    static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        var acc = Vector256<float>.Zero;
        for (; i <= n - 8; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
        float s = Vector256.Sum(acc);
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    static float StridedDot(float* g, float* src, int lo, int hi, int stride)
    {
        float s = 0f;
        for (int j = lo; j < hi; j++) s += g[j] * src[j * stride];
        return s;
    }
}
