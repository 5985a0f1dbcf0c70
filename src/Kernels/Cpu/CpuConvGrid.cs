using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>The <see cref="ConvAlgorithm.Grid"/> and <see cref="ConvAlgorithm.GridDirect"/> convolutions: implicit
/// GEMM on a padded grid (<see cref="ConvGrid"/>) for stride 1 and 2. Forward through the GEMM with a panel packer
/// that copies slices of the planes, or through a direct 16-row kernel; the weight gradient as shifted dot products;
/// the input gradient as W^T dy added back into the planes. Every kernel is generic over the SIMD width.</summary>
public unsafe partial class CpuBackend
{
    /// <summary>
    /// The implicit-GEMM layout of a stride-1 or stride-2 convolution. An image group is copied into zero-padded
    /// planes (for stride 2 each padded plane is split into its four even/odd row/column phases), and the output is
    /// computed on a grid of OutH x GridW positions, where row k = (c, r, q) of the column matrix is one contiguous
    /// slice of the planes starting at Offsets[k]: the GEMM packs its B panels with plain vector copies and never
    /// builds an im2col matrix. The GridW - OutW extra columns per row are computed and dropped.
    /// </summary>
    internal sealed class ConvGrid
    {
        public ConvGrid(in ConvSpec s)
        {
            Stride = s.Stride; Hp = s.H + 2 * s.Pad; Wp = s.W + 2 * s.Pad;
            PhaseH = (Hp + Stride - 1) / Stride; PhaseW = (Wp + Stride - 1) / Stride;
            GridW = PhaseW;
            Wide = s.OutH * GridW;
            int phases = Stride * Stride, rs = s.R * s.S;
            Offsets = GC.AllocateArray<int>(s.CPerGroup * rs, pinned: true);
            for (int c = 0; c < s.CPerGroup; c++)
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                        Offsets[c * rs + r * s.S + q] = ((c * phases + r % Stride * Stride + q % Stride) * PhaseH + r / Stride) * PhaseW + q / Stride;
            PlanesSize = (long)s.CPerGroup * phases * PhaseH * PhaseW;
            // Slices start up to (R-1)/stride rows and (S-1)/stride columns into a plane and run Wide (rounded to
            // 16) floats, so they may read past the last plane: keep a zeroed tail.
            ScratchSize = PlanesSize + ((s.R - 1) / Stride + 1) * PhaseW + s.S + (Wide + 15) / 16 * 16 + 16;
        }

        public int Stride { get; }
        public int Hp { get; }
        public int Wp { get; }
        public int PhaseH { get; }
        public int PhaseW { get; }
        public int GridW { get; }
        public int Wide { get; }
        public int[] Offsets { get; }
        public long PlanesSize { get; }
        public long ScratchSize { get; }

        /// <summary>The adjoint of <see cref="Fill"/>: dx (+)= the plane gradient at each input's padded position.
        /// A stride-2 plane gradient may use a wider row stride than PhaseW (phaseRowStride).</summary>
        public void Extract(in ConvSpec s, float* planes, float* dx, bool accumulate, int phaseRowStride = 0)
        {
            int rowStride = phaseRowStride > 0 ? phaseRowStride : PhaseW;
            long phaseSize = (long)PhaseH * rowStride;
            int cg = s.CPerGroup, h = s.H, w = s.W, pad = s.Pad;
            for (int c = 0; c < cg; c++)
                for (int i = 0; i < h; i++)
                {
                    int ph = i + pad;
                    float* d = dx + ((long)c * h + i) * w;
                    if (Stride == 1)
                    {
                        float* src = planes + ((long)c * Hp + ph) * Wp + pad;
                        if (accumulate) AddRun(d, src, w);
                        else CopyRun(src, d, w);
                        continue;
                    }
                    float* even = planes + (c * 4 + ph % 2 * 2) * phaseSize + (long)(ph / 2) * rowStride, odd = even + phaseSize;
                    // x[j] sits at padded column j + pad: phase (j + pad) % 2, position (j + pad) / 2. Eight at a time:
                    // four from each phase, interleaved back.
                    float* fromEven = pad % 2 == 0 ? even + pad / 2 : odd + pad / 2;          // where x[0], x[2], ... sit
                    float* fromOdd = pad % 2 == 0 ? odd + pad / 2 : even + (pad + 1) / 2;     // where x[1], x[3], ... sit
                    int j = 0;
                    for (; j + 8 <= w; j += 8)
                    {
                        var v = Interleave(fromEven + j / 2, fromOdd + j / 2);
                        if (accumulate) v += Vector256.Load(d + j);
                        v.Store(d + j);
                    }
                    // Written (not added) rows of even width end with an overlapping chunk, as in Fill.
                    if (j < w && !accumulate && w >= 8 && w % 2 == 0) { Interleave(fromEven + (w - 8) / 2, fromOdd + (w - 8) / 2).Store(d + w - 8); j = w; }
                    for (; j < w; j++)
                    {
                        float v = j % 2 == 0 ? fromEven[j / 2] : fromOdd[j / 2];
                        d[j] = accumulate ? d[j] + v : v;
                    }
                }
        }

        /// <summary>Writes the padded (and, for stride 2, phase-split) planes of one image group into a scratch slot
        /// whose padding and tail (up to ScratchSize) are already zero.</summary>
        /// <remarks>Only input positions are written, the same ones for every image, so the padding stays zero: the
        /// caller clears the scratch once per call instead of once per image.</remarks>
        public void Fill(in ConvSpec s, float* x, float* dst)
        {
            int cg = s.CPerGroup, h = s.H, w = s.W, pad = s.Pad;
            if (Stride == 1)
            {
                for (int c = 0; c < cg; c++)
                    for (int i = 0; i < h; i++)
                        CopyRun(x + ((long)c * h + i) * w, dst + ((long)c * Hp + i + pad) * Wp + pad, w);
                return;
            }
            long phaseSize = (long)PhaseH * PhaseW;
            for (int c = 0; c < cg; c++)
                for (int i = 0; i < h; i++)
                {
                    int ph = i + pad;
                    float* src = x + ((long)c * h + i) * w;
                    float* even = dst + (c * 4 + ph % 2 * 2) * phaseSize + (long)(ph / 2) * PhaseW, odd = even + phaseSize;
                    float* toEven = pad % 2 == 0 ? even + pad / 2 : odd + pad / 2;            // x[0], x[2], ...
                    float* toOdd = pad % 2 == 0 ? odd + pad / 2 : even + (pad + 1) / 2;       // x[1], x[3], ...
                    int j = 0;
                    if (Vector512.IsHardwareAccelerated)
                    {
                        for (; j + 16 <= w; j += 16) Deinterleave(Vector512.Load(src + j), toEven + j / 2, toOdd + j / 2);
                        // An even width ends with an overlapping chunk (same values rewritten).
                        if (j < w && w >= 16 && w % 2 == 0) { Deinterleave(Vector512.Load(src + w - 16), toEven + (w - 16) / 2, toOdd + (w - 16) / 2); j = w; }
                    }
                    for (; j + 8 <= w; j += 8) Deinterleave(Vector256.Load(src + j), toEven + j / 2, toOdd + j / 2);
                    // An even width ends with an overlapping chunk (same values rewritten); an odd one with scalars.
                    if (j < w && w >= 8 && w % 2 == 0) { Deinterleave(Vector256.Load(src + w - 8), toEven + (w - 8) / 2, toOdd + (w - 8) / 2); j = w; }
                    for (; j < w; j++)
                        if (j % 2 == 0) toEven[j / 2] = src[j];
                        else toOdd[j / 2] = src[j];
                }
        }

        /// <summary>[e0 o0 e1 o1 e2 o2 e3 o3] from four floats at each pointer.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> Interleave(float* even, float* odd) =>
            Vector256.Shuffle(Vector256.Create(Vector128.Load(even), Vector128.Load(odd)), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7));

        /// <summary>Lanes 0, 2, .., 14 to even and 1, 3, .., 15 to odd.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Deinterleave(Vector512<float> v, float* even, float* odd)
        {
            var split = Vector512.Shuffle(v, Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
            split.GetLower().Store(even);
            split.GetUpper().Store(odd);
        }

        /// <summary>Lanes 0, 2, 4, 6 to even and 1, 3, 5, 7 to odd.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Deinterleave(Vector256<float> v, float* even, float* odd)
        {
            var split = Vector256.Shuffle(v, Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7));
            split.GetLower().Store(even);
            split.GetUpper().Store(odd);
        }
    }

    readonly Dictionary<ConvSpec, ConvGrid> _grids = [];

    ConvGrid Grid(in ConvSpec s)
    {
        lock (_grids)
        {
            if (!_grids.TryGetValue(s, out var g)) _grids[s] = g = new ConvGrid(s);
            return g;
        }
    }

    void ForwardGrid(ConvSpec spec, float* xp, float* wp, float* yp, float beta, bool direct, double* rowStats = null)
    {
        if (_use512) ForwardGrid<V512>(spec, xp, wp, yp, beta, direct, rowStats);
        else ForwardGrid<V256>(spec, xp, wp, yp, beta, direct, rowStats);
    }

    /// <summary>y = conv(x, w) + beta y on the grid (beta 0 or 1: the input gradient adds into dx). Small grids are batched: several images side by side form one
    /// GEMM with N = images x grid size, so the weights are packed once per batch and few panels are partial.
    /// With direct, a 16-row kernel reads the planes without packing (weights transposed to [G][ckk][kg]).
    /// With rowStats (beta 0), each output row's (mean, M2) is formed as soon as the row is written.</summary>
    void ForwardGrid<TV>(ConvSpec spec, float* xp, float* wp, float* yp, float beta, bool direct, double* rowStats) where TV : struct, ISimd<TV>
    {
        int outH = spec.OutH, outW = spec.OutW, cg = spec.CPerGroup;   // derived sizes are computed properties (divisions): read once
        int ohw = outH * outW, ckk = cg * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        var grid = Grid(spec);
        int batch = Math.Clamp(1024 / grid.Wide, 1, 16);
        float[]? wT = direct ? TransposeWeights(wp, spec.Groups, kg, ckk) : null;
        ForImages(spec.N, batch, (worker, blocks) =>
        {
            var gemm = WorkerGemm(worker);
            long slot = (grid.ScratchSize + 15) / 16 * 16;
            int ld = (grid.Wide + 15) / 16 * 16;
            float* scratch = ColScratch(batch * slot + (long)batch * kg * ld + 16, out _);
            float* wideOut = scratch + batch * slot;
            new Span<float>(scratch, (int)(batch * slot)).Clear();
            while (blocks.Take(out _, out int n0, out int n1))
            for (int n = n0; n < n1; n += batch)
            {
                int nb = Math.Min(batch, n1 - n);
                for (int g = 0; g < spec.Groups; g++)
                {
                    for (int b = 0; b < nb; b++) grid.Fill(spec, xp + ((long)(n + b) * spec.C + g * cg) * hw, scratch + b * slot);
                    long rowStride, imageStride;
                    fixed (int* offsets = grid.Offsets)
                    {
                        if (wT != null)
                        {
                            rowStride = ld; imageStride = (long)kg * ld;
                            fixed (float* at = wT)
                                for (int b = 0; b < nb; b++)
                                {
                                    int j0 = 0;
                                    for (; j0 + 3 * TV.Count <= grid.Wide; j0 += 3 * TV.Count)
                                        DirectRows8x3<TV>(at + (long)g * ckk * kg, kg, ckk, scratch + b * slot, offsets, j0, wideOut + b * imageStride, ld);
                                    for (; j0 < grid.Wide; j0 += TV.Count)
                                        DirectChunk<TV>(at + (long)g * ckk * kg, kg, ckk, scratch + b * slot, offsets, j0, wideOut + b * imageStride, ld);
                                }
                        }
                        else
                        {
                            rowStride = (long)nb * grid.Wide; imageStride = grid.Wide;
                            gemm.Run(new GemmSpec(false, false, kg, nb * grid.Wide, ckk), wp + (long)g * kg * ckk,
                                new OffsetPacker(scratch, slot, grid.Wide, offsets), wideOut);
                        }
                    }
                    // Compact: drop the extra grid columns, adding beta y. Without beta, rows are copied with whole
                    // vectors that may spill into the next row's start; rows go in order, so the next copy
                    // overwrites the spill; rows whose spill would pass the end of the block are copied exactly.
                    int rows = kg * outH, owv = (outW + TV.Count - 1) / TV.Count * TV.Count;
                    for (int b = 0; b < nb; b++)
                    {
                        float* yg = yp + ((long)(n + b) * spec.K + g * kg) * ohw;
                        for (int k = 0, row = 0; k < kg; k++)
                        {
                            for (int i = 0; i < outH; i++, row++)
                            {
                                float* src = wideOut + k * rowStride + b * imageStride + (long)i * grid.GridW, dst = yg + (long)row * outW;
                                if (beta != 0f) AddRun(dst, src, outW);
                                else if ((long)(rows - 1 - row) * outW < owv - outW) CopyRun(src, dst, outW);   // spill not covered by later rows
                                else for (int j = 0; j < owv; j += TV.Count) TV.Store(TV.Load(src + j), dst + j);
                            }
                            // Channel k's rows are complete (a spill lands in channel k + 1, rewritten next) and hot.
                            if (rowStats != null) RowStats<TV>(yg + (long)k * ohw, ohw, rowStats + 2 * ((long)(n + b) * spec.K + g * kg + k));
                        }
                    }
                }
            }
        });
    }

    /// <summary>out[m, j0 .. j0 + 3 lanes) for m in [0, kg), kg a multiple of 8: 8 output rows x 3 vectors of positions
    /// in 24 accumulators, so each k costs 3 loads and 8 broadcasts for 24 FMAs (the 16 x 1 block below needs 17
    /// loads for 16: the broadcasts, not the FMAs, bounded it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DirectRows8x3<TV>(float* at, int kg, int ckk, float* planes, int* offsets, int j0, float* output, int ld) where TV : struct, ISimd<TV>
    {
        int n = TV.Count;
        for (int mb = 0; mb < kg; mb += 8)
        {
            TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            TV b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
            TV c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            float* a = at + mb;
            float* pj = planes + j0;
            for (int k = 0; k < ckk; k++, a += kg)
            {
                float* src = pj + offsets[k];
                TV u = TV.Load(src), v = TV.Load(src + n), w = TV.Load(src + 2 * n);
                TV e = TV.Splat(a[0]); a0 = TV.Fma(e, u, a0); b0 = TV.Fma(e, v, b0); c0 = TV.Fma(e, w, c0);
                e = TV.Splat(a[1]); a1 = TV.Fma(e, u, a1); b1 = TV.Fma(e, v, b1); c1 = TV.Fma(e, w, c1);
                e = TV.Splat(a[2]); a2 = TV.Fma(e, u, a2); b2 = TV.Fma(e, v, b2); c2 = TV.Fma(e, w, c2);
                e = TV.Splat(a[3]); a3 = TV.Fma(e, u, a3); b3 = TV.Fma(e, v, b3); c3 = TV.Fma(e, w, c3);
                e = TV.Splat(a[4]); a4 = TV.Fma(e, u, a4); b4 = TV.Fma(e, v, b4); c4 = TV.Fma(e, w, c4);
                e = TV.Splat(a[5]); a5 = TV.Fma(e, u, a5); b5 = TV.Fma(e, v, b5); c5 = TV.Fma(e, w, c5);
                e = TV.Splat(a[6]); a6 = TV.Fma(e, u, a6); b6 = TV.Fma(e, v, b6); c6 = TV.Fma(e, w, c6);
                e = TV.Splat(a[7]); a7 = TV.Fma(e, u, a7); b7 = TV.Fma(e, v, b7); c7 = TV.Fma(e, w, c7);
            }
            float* o = output + (long)mb * ld + j0;
            TV.Store(a0, o); TV.Store(b0, o + n); TV.Store(c0, o + 2 * n); o += ld;
            TV.Store(a1, o); TV.Store(b1, o + n); TV.Store(c1, o + 2 * n); o += ld;
            TV.Store(a2, o); TV.Store(b2, o + n); TV.Store(c2, o + 2 * n); o += ld;
            TV.Store(a3, o); TV.Store(b3, o + n); TV.Store(c3, o + 2 * n); o += ld;
            TV.Store(a4, o); TV.Store(b4, o + n); TV.Store(c4, o + 2 * n); o += ld;
            TV.Store(a5, o); TV.Store(b5, o + n); TV.Store(c5, o + 2 * n); o += ld;
            TV.Store(a6, o); TV.Store(b6, o + n); TV.Store(c6, o + 2 * n); o += ld;
            TV.Store(a7, o); TV.Store(b7, o + n); TV.Store(c7, o + 2 * n);
        }
    }

    /// <summary>out[m, j0 .. j0 + lanes) = sum over k of at[k, m] planes[offsets[k] + j0 ..] for m in [0, kg), kg a
    /// multiple of 16: 16 output rows in 16 vector accumulators, one B load and 16 broadcasts per k.</summary>
    static void DirectChunk<TV>(float* at, int kg, int ckk, float* planes, int* offsets, int j0, float* output, int ld) where TV : struct, ISimd<TV>
    {
        for (int mb = 0; mb < kg; mb += 16)
        {
            TV c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            TV c8 = default, c9 = default, c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
            float* a = at + mb;
            float* pj = planes + j0;
            for (int k = 0; k < ckk; k++, a += kg)
            {
                var b = TV.Load(pj + offsets[k]);
                c0 = TV.Fma(TV.Splat(a[0]), b, c0); c1 = TV.Fma(TV.Splat(a[1]), b, c1);
                c2 = TV.Fma(TV.Splat(a[2]), b, c2); c3 = TV.Fma(TV.Splat(a[3]), b, c3);
                c4 = TV.Fma(TV.Splat(a[4]), b, c4); c5 = TV.Fma(TV.Splat(a[5]), b, c5);
                c6 = TV.Fma(TV.Splat(a[6]), b, c6); c7 = TV.Fma(TV.Splat(a[7]), b, c7);
                c8 = TV.Fma(TV.Splat(a[8]), b, c8); c9 = TV.Fma(TV.Splat(a[9]), b, c9);
                c10 = TV.Fma(TV.Splat(a[10]), b, c10); c11 = TV.Fma(TV.Splat(a[11]), b, c11);
                c12 = TV.Fma(TV.Splat(a[12]), b, c12); c13 = TV.Fma(TV.Splat(a[13]), b, c13);
                c14 = TV.Fma(TV.Splat(a[14]), b, c14); c15 = TV.Fma(TV.Splat(a[15]), b, c15);
            }
            float* o = output + (long)mb * ld + j0;
            TV.Store(c0, o); TV.Store(c1, o + ld); TV.Store(c2, o + 2 * ld); TV.Store(c3, o + 3 * ld);
            o += 4 * ld;
            TV.Store(c4, o); TV.Store(c5, o + ld); TV.Store(c6, o + 2 * ld); TV.Store(c7, o + 3 * ld);
            o += 4 * ld;
            TV.Store(c8, o); TV.Store(c9, o + ld); TV.Store(c10, o + 2 * ld); TV.Store(c11, o + 3 * ld);
            o += 4 * ld;
            TV.Store(c12, o); TV.Store(c13, o + ld); TV.Store(c14, o + 2 * ld); TV.Store(c15, o + 3 * ld);
        }
    }

    void GridWeightGrad(ConvSpec spec, ConvGrid grid, float* xp, float* dyp, float* dwp, bool accumulate)
    {
        if (_use512) GridWeightGrad<V512>(spec, grid, xp, dyp, dwp, accumulate);
        else GridWeightGrad<V256>(spec, grid, xp, dyp, dwp, accumulate);
    }

    /// <summary>Weight gradient on the implicit-GEMM grid: dW[k, j] = sum over images and positions n of dy[k, n]
    /// planes[Offsets[j] + n], with dy laid out on the grid (zeros in the extra columns). Both operands are
    /// contiguous along the reduction, so a dot-product kernel (4 x 4 outputs, vector partial sums) needs no
    /// transposing pack; it runs over a batch of images at once so that its horizontal sums are amortised on small
    /// grids. Workers sum their images into partials, added in worker order (deterministic).</summary>
    void GridWeightGrad<TV>(ConvSpec spec, ConvGrid grid, float* xp, float* dyp, float* dwp, bool accumulate) where TV : struct, ISimd<TV>
    {
        int outH = spec.OutH, outW = spec.OutW, cg = spec.CPerGroup;   // derived sizes are computed properties (divisions): read once
        int ohw = outH * outW, ckk = cg * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        int wide = (grid.Wide + 15) / 16 * 16;                              // reduction length per image, padded to 16
        int batch = Math.Clamp(1024 / wide, 1, 16);
        long slot = (grid.ScratchSize + 15) / 16 * 16;
        long wsize = spec.WeightSize;
        var imageBlocks = new ImageBlocks(spec.N, batch);
        var partials = new float[imageBlocks.Count][];
        ForImages(imageBlocks, (worker, blocks) =>
        {
            float* scratch = ColScratch(batch * (slot + (long)kg * wide), out _);
            float* dyAll = scratch + batch * slot;
            // The shifted reads run past the planes into a tail that must hold zeros (garbage times 0 could be NaN).
            new Span<float>(scratch, (int)(batch * (slot + (long)kg * wide))).Clear();
            while (blocks.Take(out int block, out int n0, out int n1))
            fixed (float* pp = partials[block] = BlockPartial(block, (int)wsize))
            fixed (int* offsets = grid.Offsets)
                for (int n = n0; n < n1; n += batch)
                {
                    int nb = Math.Min(batch, n1 - n);
                    for (int g = 0; g < spec.Groups; g++)
                    {
                        for (int b = 0; b < nb; b++)
                        {
                            grid.Fill(spec, xp + ((long)(n + b) * spec.C + g * cg) * hw, scratch + b * slot);
                            float* dyg = dyp + ((long)(n + b) * spec.K + g * kg) * ohw, dyb = dyAll + (long)b * kg * wide;
                            for (int k = 0; k < kg; k++)
                                for (int i = 0; i < outH; i++)
                                    CopyRun(dyg + (long)k * ohw + (long)i * outW, dyb + (long)k * wide + (long)i * grid.GridW, outW);
                        }
                        ShiftedDots<TV>(scratch, slot, offsets, dyAll, wide, nb, kg, ckk, pp + (long)g * kg * ckk);
                    }
                }
        });
        WriteWeightGradient(partials, spec, dwp, transposed: false, accumulate);
    }

    /// <summary>out[k, j] += sum over images b of dot(dy_b row k, planes_b + offsets[j]) over len (a multiple of
    /// 16); image b's planes start at planes + b slot and its dy at dy + b kg len. 4 x 4 blocks.</summary>
    static void ShiftedDots<TV>(float* plane, long slot, int* offsets, float* dy, int len, int images, int kg, int ckk, float* output) where TV : struct, ISimd<TV>
    {
        long dyStride = (long)kg * len;
        int k = 0;
        if (kg % 8 == 0 && ckk % 3 == 0)
        {
            // 8 x 3 blocks: each pass over the planes serves 8 dy rows instead of 4, halving the slices streamed from L2.
            for (; k < kg; k += 8)
                for (int j = 0; j < ckk; j += 3)
                    ShiftedDots8x3<TV>(plane, slot, offsets + j, dy + (long)k * len, dyStride, len, images, output + (long)k * ckk + j, ckk);
            return;
        }
        for (; k + 4 <= kg; k += 4)
        {
            int j = 0;
            for (; j + 4 <= ckk; j += 4)
            {
                TV c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
                TV c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
                for (int b = 0; b < images; b++)
                {
                    float* a0 = dy + b * dyStride + (long)k * len, a1 = a0 + len, a2 = a1 + len, a3 = a2 + len;
                    float* pb = plane + b * slot;
                    float* b0 = pb + offsets[j], b1 = pb + offsets[j + 1], b2 = pb + offsets[j + 2], b3 = pb + offsets[j + 3];
                    for (int p = 0; p < len; p += TV.Count)
                    {
                        var v0 = TV.Load(b0 + p); var v1 = TV.Load(b1 + p); var v2 = TV.Load(b2 + p); var v3 = TV.Load(b3 + p);
                        var u = TV.Load(a0 + p);
                        c00 = TV.Fma(u, v0, c00); c01 = TV.Fma(u, v1, c01); c02 = TV.Fma(u, v2, c02); c03 = TV.Fma(u, v3, c03);
                        u = TV.Load(a1 + p);
                        c10 = TV.Fma(u, v0, c10); c11 = TV.Fma(u, v1, c11); c12 = TV.Fma(u, v2, c12); c13 = TV.Fma(u, v3, c13);
                        u = TV.Load(a2 + p);
                        c20 = TV.Fma(u, v0, c20); c21 = TV.Fma(u, v1, c21); c22 = TV.Fma(u, v2, c22); c23 = TV.Fma(u, v3, c23);
                        u = TV.Load(a3 + p);
                        c30 = TV.Fma(u, v0, c30); c31 = TV.Fma(u, v1, c31); c32 = TV.Fma(u, v2, c32); c33 = TV.Fma(u, v3, c33);
                    }
                }
                float* o = output + (long)k * ckk + j;
                o[0] += TV.Sum(c00); o[1] += TV.Sum(c01); o[2] += TV.Sum(c02); o[3] += TV.Sum(c03); o += ckk;
                o[0] += TV.Sum(c10); o[1] += TV.Sum(c11); o[2] += TV.Sum(c12); o[3] += TV.Sum(c13); o += ckk;
                o[0] += TV.Sum(c20); o[1] += TV.Sum(c21); o[2] += TV.Sum(c22); o[3] += TV.Sum(c23); o += ckk;
                o[0] += TV.Sum(c30); o[1] += TV.Sum(c31); o[2] += TV.Sum(c32); o[3] += TV.Sum(c33);
            }
            for (; j < ckk; j++)
                for (int kk = k; kk < k + 4; kk++) output[(long)kk * ckk + j] += BatchDot<TV>(plane, slot, offsets[j], dy, dyStride, (long)kk * len, len, images);
        }
        for (; k < kg; k++)
            for (int j = 0; j < ckk; j++) output[(long)k * ckk + j] += BatchDot<TV>(plane, slot, offsets[j], dy, dyStride, (long)k * len, len, images);
    }

    /// <summary>out[r, t] += sum over images b of dot(dy_b row r, planes_b + offsets[t]) for r &lt; 8, t &lt; 3: 24 accumulators,
    /// 11 loads per 24 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ShiftedDots8x3<TV>(float* plane, long slot, int* offsets, float* dy, long dyStride, int len, int images, float* o, int ldo) where TV : struct, ISimd<TV>
    {
        TV c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default, c20 = default, c21 = default;
        TV c22 = default, c30 = default, c31 = default, c32 = default, c40 = default, c41 = default, c42 = default, c50 = default;
        TV c51 = default, c52 = default, c60 = default, c61 = default, c62 = default, c70 = default, c71 = default, c72 = default;
        for (int b = 0; b < images; b++)
        {
            float* a = dy + b * dyStride;
            float* pb = plane + b * slot;
            float* b0 = pb + offsets[0], b1 = pb + offsets[1], b2 = pb + offsets[2];
            for (int p = 0; p < len; p += TV.Count)
            {
                var v0 = TV.Load(b0 + p); var v1 = TV.Load(b1 + p); var v2 = TV.Load(b2 + p);
                float* ap = a + p;
                var u = TV.Load(ap); c00 = TV.Fma(u, v0, c00); c01 = TV.Fma(u, v1, c01); c02 = TV.Fma(u, v2, c02);
                u = TV.Load(ap + len); c10 = TV.Fma(u, v0, c10); c11 = TV.Fma(u, v1, c11); c12 = TV.Fma(u, v2, c12);
                u = TV.Load(ap + 2 * len); c20 = TV.Fma(u, v0, c20); c21 = TV.Fma(u, v1, c21); c22 = TV.Fma(u, v2, c22);
                u = TV.Load(ap + 3 * len); c30 = TV.Fma(u, v0, c30); c31 = TV.Fma(u, v1, c31); c32 = TV.Fma(u, v2, c32);
                u = TV.Load(ap + 4 * len); c40 = TV.Fma(u, v0, c40); c41 = TV.Fma(u, v1, c41); c42 = TV.Fma(u, v2, c42);
                u = TV.Load(ap + 5 * len); c50 = TV.Fma(u, v0, c50); c51 = TV.Fma(u, v1, c51); c52 = TV.Fma(u, v2, c52);
                u = TV.Load(ap + 6 * len); c60 = TV.Fma(u, v0, c60); c61 = TV.Fma(u, v1, c61); c62 = TV.Fma(u, v2, c62);
                u = TV.Load(ap + 7 * len); c70 = TV.Fma(u, v0, c70); c71 = TV.Fma(u, v1, c71); c72 = TV.Fma(u, v2, c72);
            }
        }
        o[0] += TV.Sum(c00); o[1] += TV.Sum(c01); o[2] += TV.Sum(c02); o += ldo;
        o[0] += TV.Sum(c10); o[1] += TV.Sum(c11); o[2] += TV.Sum(c12); o += ldo;
        o[0] += TV.Sum(c20); o[1] += TV.Sum(c21); o[2] += TV.Sum(c22); o += ldo;
        o[0] += TV.Sum(c30); o[1] += TV.Sum(c31); o[2] += TV.Sum(c32); o += ldo;
        o[0] += TV.Sum(c40); o[1] += TV.Sum(c41); o[2] += TV.Sum(c42); o += ldo;
        o[0] += TV.Sum(c50); o[1] += TV.Sum(c51); o[2] += TV.Sum(c52); o += ldo;
        o[0] += TV.Sum(c60); o[1] += TV.Sum(c61); o[2] += TV.Sum(c62); o += ldo;
        o[0] += TV.Sum(c70); o[1] += TV.Sum(c71); o[2] += TV.Sum(c72);
    }

    static float BatchDot<TV>(float* plane, long slot, int offset, float* dy, long dyStride, long row, int len, int images) where TV : struct, ISimd<TV>
    {
        TV acc = default;
        for (int b = 0; b < images; b++)
        {
            float* a = dy + b * dyStride + row, p = plane + b * slot + offset;
            for (int i = 0; i < len; i += TV.Count) acc = TV.Fma(TV.Load(a + i), TV.Load(p + i), acc);
        }
        return TV.Sum(acc);
    }

    /// <summary>B panels on the implicit-GEMM grid of a batch of images side by side: column j belongs to image
    /// j / wide, whose planes start at planes + image * slot; row k of that image is the contiguous slice at
    /// offsets[k]. A panel that straddles two images is copied in two parts.</summary>
    readonly struct OffsetPacker(float* planes, long slot, int wide, int* offsets) : IPanelPacker
    {
        public void Pack(float* dst, int pc, int kc, int j0, int cols, int nr)
        {
            int image = j0 / wide, local = j0 - image * wide;
            int first = Math.Min(cols, wide - local);          // columns in the first image
            float* p0 = planes + image * slot + local, p1 = planes + (image + 1) * slot;
            for (int kk = 0; kk < kc; kk++)
            {
                int off = offsets[pc + kk];
                float* src = p0 + off;
                float* d = dst + kk * nr;
                if (first < cols)
                {
                    int j = 0;
                    for (; j < first; j++) d[j] = src[j];
                    for (; j < cols; j++) d[j] = p1[off + j - first];
                    for (; j < nr; j++) d[j] = 0f;
                }
                else if (cols == nr) CopyRun(src, d, nr);
                else
                {
                    int j = 0;
                    for (; j < cols; j++) d[j] = src[j];
                    for (; j < nr; j++) d[j] = 0f;
                }
            }
        }
    }

    /// <summary>Input gradient on the implicit-GEMM grid (the adjoint of <see cref="ForwardGrid"/>): dCol = W^T dy with
    /// dy on the grid (zeros in the extra columns) for a batch of images, then each row k of dCol is added as a
    /// contiguous run into the plane gradient at Offsets[k] (a col2im whose every add is a vector run), and the
    /// plane gradient is read back through the padding and phase layout into dx.</summary>
    void GridBackwardInput(ConvSpec spec, ConvGrid grid, float* dyp, float* wp, float* dxp, bool accumulate)
    {
        int outH = spec.OutH, outW = spec.OutW, cg = spec.CPerGroup;   // derived sizes are computed properties (divisions): read once
        int ohw = outH * outW, ckk = cg * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        int batch = Math.Clamp(1024 / grid.Wide, 1, 16);
        long slot = (grid.ScratchSize + 15) / 16 * 16;
        ForImages(spec.N, batch, (worker, blocks) =>
        {
            var gemm = WorkerGemm(worker);
            int wideAll = batch * grid.Wide;
            float* scratch = ColScratch(slot + (long)kg * wideAll + (long)ckk * wideAll, out _);
            float* dPlanes = scratch, dyGrid = scratch + slot, dCol = dyGrid + (long)kg * wideAll;
            int laidOut = -1;
            while (blocks.Take(out _, out int n0, out int n1))
            for (int n = n0; n < n1; n += batch)
            {
                int nb = Math.Min(batch, n1 - n), cols = nb * grid.Wide;
                // The extra grid columns of dy must be zero: they are never written, but a smaller last batch
                // lays the rows out differently, so clear whenever the layout changes.
                if (nb != laidOut) { new Span<float>(dyGrid, kg * cols).Clear(); laidOut = nb; }
                for (int g = 0; g < spec.Groups; g++)
                {
                    for (int b = 0; b < nb; b++)
                    {
                        float* dyg = dyp + ((long)(n + b) * spec.K + g * kg) * ohw;
                        for (int k = 0; k < kg; k++)
                            for (int i = 0; i < outH; i++)
                                CopyRun(dyg + (long)k * ohw + (long)i * outW, dyGrid + (long)k * cols + (long)b * grid.Wide + (long)i * grid.GridW, outW);
                    }
                    gemm.Run(new GemmSpec(true, false, ckk, cols, kg), wp + (long)g * kg * ckk, dyGrid, dCol);
                    for (int b = 0; b < nb; b++)
                    {
                        new Span<float>(dPlanes, (int)grid.ScratchSize).Clear();
                        for (int k = 0; k < ckk; k++)
                            AddRun(dPlanes + grid.Offsets[k], dCol + (long)k * cols + (long)b * grid.Wide, grid.Wide);
                        grid.Extract(spec, dPlanes, dxp + ((long)(n + b) * spec.C + g * cg) * hw, accumulate);
                    }
                }
            }
        });
    }
}
