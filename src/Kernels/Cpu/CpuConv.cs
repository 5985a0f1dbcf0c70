using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Convolution, batch norm, pooling and dropout on the CPU. Convolutions are im2col + GEMM per image:
/// threads take whole images, each with its own single-threaded GEMM and column buffer, so the packed GEMM
/// works on (K/G) x (C/G R S) x (OH OW) products that fit in cache. 1x1 stride-1 convolutions skip im2col.
/// Depthwise convolutions (one input channel per group) use direct loops: their GEMMs would be 1 x R S.</summary>
public unsafe partial class CpuBackend
{
    CpuGemm[]? _workerGemms;
    [ThreadStatic] static float[]? t_col;

    /// <summary>One single-threaded GEMM per worker: each owns its packing buffers, so workers never share them.</summary>
    CpuGemm WorkerGemm(int worker)
    {
        var gemms = _workerGemms ??= Enumerable.Range(0, _parallel.Threads).Select(_ => new CpuGemm(new CpuParallel(1), _use512)).ToArray();
        return gemms[worker];
    }

    float[][] _partials = [];

    /// <summary>A zeroed weight-gradient partial for one worker, reused across calls (no allocation per step).</summary>
    float[] WorkerPartial(int worker, int size)
    {
        if (_partials.Length < _parallel.Threads) _partials = new float[_parallel.Threads][];
        var p = _partials[worker];
        if (p == null || p.Length < size) _partials[worker] = p = GC.AllocateArray<float>(size, pinned: true);
        Array.Clear(p, 0, size);
        return p;
    }

    float[] _flipped = [];

    /// <summary>A pinned per-thread column buffer; the thread-static reference keeps it alive.</summary>
    static float* ColScratch(long size, out float[] keepAlive)
    {
        var s = t_col;
        if (s == null || s.Length < size) t_col = s = GC.AllocateArray<float>((int)Math.Max(size, 4096), pinned: true);
        keepAlive = s;
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref s[0]);
    }

    /// <summary>Splits images over the workers: body(worker, firstImage, endImage).</summary>
    void ForImages(int images, Action<int, int, int> body)
    {
        int workers = Math.Min(_parallel.Threads, images);
        if (workers <= 1) { body(0, 0, images); return; }
        _parallel.Chunks(workers, w => body(w, (int)((long)w * images / workers), (int)((long)(w + 1) * images / workers)));
    }

    static bool IsPointwise(in ConvSpec s) => s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0;

    /// <summary>A 1x1 convolution with stride > 1 (a ResNet projection shortcut) reads only every stride-th pixel:
    /// it runs as a stride-1 pointwise GEMM on the subsampled input instead of through the general grid.</summary>
    static bool IsStridedPointwise(in ConvSpec s) => s.R == 1 && s.S == 1 && s.Stride > 1 && s.Pad == 0 && !s.IsDepthwise;

    static ConvSpec Subsampled(in ConvSpec s) => new(s.N, s.C, s.OutH, s.OutW, s.K, 1, 1, 1, 0, s.Groups);

    CpuBuffer<float>? _subsampleScratch;

    /// <summary>A reusable [N, C, OutH, OutW] buffer for strided pointwise convolutions.</summary>
    CpuBuffer<float> SubsampleScratch(in ConvSpec s)
    {
        int size = checked(s.N * s.C * s.OutH * s.OutW);
        if (_subsampleScratch == null || _subsampleScratch.Length < size) _subsampleScratch = new CpuBuffer<float>(this, size);
        return _subsampleScratch;
    }

    /// <summary>xs[n, c, i, j] = x[n, c, i stride, j stride] (gather), or dx[n, c, i stride, j stride] (+)= xs (scatter;
    /// without accumulate the other positions of dx are zeroed).</summary>
    void Subsample(in ConvSpec s, float* x, float* xs, bool scatter, bool accumulate)
    {
        var spec = s;
        int planes = s.N * s.C;
        _parallel.For(planes, (long)s.H * s.W, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                float* plane = x + (long)p * spec.H * spec.W, sub = xs + (long)p * spec.OutH * spec.OutW;
                if (scatter && !accumulate) new Span<float>(plane, spec.H * spec.W).Clear();
                for (int i = 0; i < spec.OutH; i++)
                {
                    float* row = plane + (long)i * spec.Stride * spec.W, subRow = sub + (long)i * spec.OutW;
                    if (scatter) for (int j = 0; j < spec.OutW; j++) row[j * spec.Stride] += subRow[j];
                    else for (int j = 0; j < spec.OutW; j++) subRow[j] = row[j * spec.Stride];
                }
            }
        });
    }

    protected override void Conv2dCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y)
    {
        if (s.IsDepthwise && s.Stride == 1) { DepthwiseShifted(s, P(x), P(weight), P(y), accumulate: false, flip: false); return; }
        if (s.IsDepthwise) { DepthwiseForward(s, P(x), P(weight), P(y)); return; }
        if (LanesSupported(s)) { ForwardLanes(s, P(x), P(weight), P(y), accumulate: false); return; }
        if (IsStridedPointwise(s))
        {
            var xs = SubsampleScratch(s);
            Subsample(s, P(x), xs.Pointer, scatter: false, accumulate: false);
            Forward(Subsampled(s), xs.Pointer, P(weight), P(y), 0f);
            return;
        }
        Forward(s, P(x), P(weight), P(y), 0f);
    }

    /// <summary>
    /// The implicit-GEMM layout of a stride-1 or stride-2 convolution. An image group is copied into zero-padded
    /// planes (for stride 2 each padded plane is split into its four even/odd row/column phases), and the output is
    /// computed on a grid of OutH x GridW positions, where row k = (c, r, q) of the column matrix is one contiguous
    /// slice of the planes starting at Offsets[k]: the GEMM packs its B panels with plain vector copies and never
    /// builds an im2col matrix. The GridW - OutW extra columns per row are computed and dropped.
    /// </summary>
    sealed class ConvGrid
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

        public static bool Supports(in ConvSpec s) => (s.Stride == 1 && !IsPointwise(s)) || s.Stride == 2;

        /// <summary>Writes the padded (and, for stride 2, phase-split) planes of one image group into a scratch slot
        /// whose padding and tail (up to ScratchSize) are already zero.</summary>
        /// <summary>The adjoint of <see cref="Fill"/>: dx (+)= the plane gradient at each input's padded position.</summary>
        public void Extract(in ConvSpec s, float* planes, float* dx, bool accumulate)
        {
            long phaseSize = (long)PhaseH * PhaseW;
            for (int c = 0; c < s.CPerGroup; c++)
                for (int i = 0; i < s.H; i++)
                {
                    int ph = i + s.Pad;
                    float* d = dx + ((long)c * s.H + i) * s.W;
                    if (Stride == 1)
                    {
                        float* src = planes + ((long)c * Hp + ph) * Wp + s.Pad;
                        if (accumulate) AddRun(d, src, s.W);
                        else CopyRun(src, d, s.W);
                        continue;
                    }
                    float* even = planes + (c * 4 + ph % 2 * 2) * phaseSize + (long)(ph / 2) * PhaseW, odd = even + phaseSize;
                    int j0 = s.Pad % 2, j1 = 1 - s.Pad % 2;
                    if (accumulate)
                    {
                        for (int j = j0; j < s.W; j += 2) d[j] += even[(j + s.Pad) >> 1];
                        for (int j = j1; j < s.W; j += 2) d[j] += odd[(j + s.Pad) >> 1];
                    }
                    else
                    {
                        for (int j = j0; j < s.W; j += 2) d[j] = even[(j + s.Pad) >> 1];
                        for (int j = j1; j < s.W; j += 2) d[j] = odd[(j + s.Pad) >> 1];
                    }
                }
        }

        /// <remarks>Only input positions are written, the same ones for every image, so the padding stays zero: the
        /// caller clears the scratch once per call instead of once per image.</remarks>
        public void Fill(in ConvSpec s, float* x, float* dst)
        {
            if (Stride == 1)
            {
                for (int c = 0; c < s.CPerGroup; c++)
                    for (int i = 0; i < s.H; i++)
                        CopyRun(x + ((long)c * s.H + i) * s.W, dst + ((long)c * Hp + i + s.Pad) * Wp + s.Pad, s.W);
                return;
            }
            long phaseSize = (long)PhaseH * PhaseW;
            for (int c = 0; c < s.CPerGroup; c++)
                for (int i = 0; i < s.H; i++)
                {
                    int ph = i + s.Pad;
                    float* src = x + ((long)c * s.H + i) * s.W;
                    float* even = dst + (c * 4 + ph % 2 * 2) * phaseSize + (long)(ph / 2) * PhaseW, odd = even + phaseSize;
                    // Padded column pw = j + pad goes to phase pw % 2 at pw / 2: two branch-free strided loops.
                    int j0 = s.Pad % 2, j1 = 1 - s.Pad % 2;     // first j landing in the even / odd phase
                    for (int j = j0; j < s.W; j += 2) even[(j + s.Pad) >> 1] = src[j];
                    for (int j = j1; j < s.W; j += 2) odd[(j + s.Pad) >> 1] = src[j];
                }
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

    /// <summary>y = conv(x, w) + beta y: on the implicit-GEMM grid for stride 1 and 2 (see <see cref="ConvGrid"/>),
    /// as a plain GEMM for 1x1 stride-1 convolutions, with im2col otherwise. Small grids are batched: several
    /// images side by side form one GEMM with N = images x grid size, so the weights are packed once per batch and
    /// few panels are partial.</summary>
    void Forward(ConvSpec spec, float* xp, float* wp, float* yp, float beta)
    {
        int ohw = spec.OutH * spec.OutW, ckk = spec.CPerGroup * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        var grid = ConvGrid.Supports(spec) ? Grid(spec) : null;
        int batch = grid == null ? 1 : Math.Clamp(1024 / grid.Wide, 1, 16);
        // Layers with 16 to 64 output channels per group use the direct kernel with transposed weights [G][ckk][kg].
        float[]? wT = grid != null && kg % 16 == 0 && kg <= 64 && Vector512.IsHardwareAccelerated ? TransposeWeights(wp, spec.Groups, kg, ckk) : null;
        ForImages(spec.N, (worker, n0, n1) =>
        {
            var gemm = WorkerGemm(worker);
            if (grid == null)
            {
                float* col = IsPointwise(spec) ? null : ColScratch((long)ckk * ohw, out _);
                for (int n = n0; n < n1; n++)
                    for (int g = 0; g < spec.Groups; g++)
                    {
                        float* xg = xp + ((long)n * spec.C + g * spec.CPerGroup) * hw, b = xg;
                        if (col != null) { Im2Col(spec, xg, col); b = col; }
                        gemm.Run(new GemmSpec(false, false, kg, ohw, ckk, Beta: beta), wp + (long)g * kg * ckk, b, yp + ((long)n * spec.K + g * kg) * ohw);
                    }
                return;
            }
            long slot = (grid.ScratchSize + 15) / 16 * 16;
            int ld = (grid.Wide + 15) / 16 * 16;
            float* scratch = ColScratch(batch * slot + (long)batch * kg * ld + 16, out _);
            float* wideOut = scratch + batch * slot;
            new Span<float>(scratch, (int)(batch * slot)).Clear();
            for (int n = n0; n < n1; n += batch)
            {
                int nb = Math.Min(batch, n1 - n);
                for (int g = 0; g < spec.Groups; g++)
                {
                    for (int b = 0; b < nb; b++) grid.Fill(spec, xp + ((long)(n + b) * spec.C + g * spec.CPerGroup) * hw, scratch + b * slot);
                    long rowStride, imageStride;
                    fixed (int* offsets = grid.Offsets)
                    {
                        if (wT != null)
                        {
                            // Few output channels: a direct 16-row kernel reads B straight from the planes (no packing).
                            rowStride = ld; imageStride = (long)kg * ld;
                            fixed (float* at = wT)
                                for (int b = 0; b < nb; b++)
                                    for (int j0 = 0; j0 < grid.Wide; j0 += 16)
                                        DirectChunk(at + (long)g * ckk * kg, kg, ckk, scratch + b * slot, offsets, j0, wideOut + b * imageStride, ld);
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
                    int rows = kg * spec.OutH, owv = (spec.OutW + 15) / 16 * 16;
                    for (int b = 0; b < nb; b++)
                    {
                        float* yg = yp + ((long)(n + b) * spec.K + g * kg) * ohw;
                        for (int row = 0; row < rows; row++)
                        {
                            int k = row / spec.OutH, i = row - k * spec.OutH;
                            float* src = wideOut + k * rowStride + b * imageStride + (long)i * grid.GridW, dst = yg + (long)row * spec.OutW;
                            if (beta != 0f) BinaryRun(BinaryOp.Add, dst, src, dst, spec.OutW);
                            else if ((long)(rows - 1 - row) * spec.OutW < owv - spec.OutW) CopyRun(src, dst, spec.OutW);   // spill not covered by later rows
                            else for (int j = 0; j < owv; j += 16) Vector512.Store(Vector512.Load(src + j), dst + j);
                        }
                    }
                }
            }
        });
    }

    float[] _wT = [];

    float[] TransposeWeights(float* w, int groups, int kg, int ckk)
    {
        long size = (long)groups * kg * ckk;
        if (_wT.Length < size) _wT = GC.AllocateArray<float>((int)size, pinned: true);
        for (int g = 0; g < groups; g++)
            for (int k = 0; k < kg; k++)
                for (int j = 0; j < ckk; j++)
                    _wT[((long)g * ckk + j) * kg + k] = w[((long)g * kg + k) * ckk + j];
        return _wT;
    }

    /// <summary>out[m, j0 .. j0 + 16) = sum over k of at[k, m] planes[offsets[k] + j0 ..] for m in [0, kg), kg a
    /// multiple of 16: 16 output rows in 16 vector accumulators, one B load and 16 broadcasts per k.</summary>
    static void DirectChunk(float* at, int kg, int ckk, float* planes, int* offsets, int j0, float* output, int ld)
    {
        for (int mb = 0; mb < kg; mb += 16)
        {
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            Vector512<float> c8 = default, c9 = default, c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
            float* a = at + mb;
            float* pj = planes + j0;
            for (int k = 0; k < ckk; k++, a += kg)
            {
                var b = Vector512.Load(pj + offsets[k]);
                c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[0]), b, c0); c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a[1]), b, c1);
                c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a[2]), b, c2); c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a[3]), b, c3);
                c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a[4]), b, c4); c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a[5]), b, c5);
                c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a[6]), b, c6); c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a[7]), b, c7);
                c8 = Vector512.FusedMultiplyAdd(Vector512.Create(a[8]), b, c8); c9 = Vector512.FusedMultiplyAdd(Vector512.Create(a[9]), b, c9);
                c10 = Vector512.FusedMultiplyAdd(Vector512.Create(a[10]), b, c10); c11 = Vector512.FusedMultiplyAdd(Vector512.Create(a[11]), b, c11);
                c12 = Vector512.FusedMultiplyAdd(Vector512.Create(a[12]), b, c12); c13 = Vector512.FusedMultiplyAdd(Vector512.Create(a[13]), b, c13);
                c14 = Vector512.FusedMultiplyAdd(Vector512.Create(a[14]), b, c14); c15 = Vector512.FusedMultiplyAdd(Vector512.Create(a[15]), b, c15);
            }
            float* o = output + (long)mb * ld + j0;
            Vector512.Store(c0, o); Vector512.Store(c1, o + ld); Vector512.Store(c2, o + 2 * ld); Vector512.Store(c3, o + 3 * ld);
            o += 4 * ld;
            Vector512.Store(c4, o); Vector512.Store(c5, o + ld); Vector512.Store(c6, o + 2 * ld); Vector512.Store(c7, o + 3 * ld);
            o += 4 * ld;
            Vector512.Store(c8, o); Vector512.Store(c9, o + ld); Vector512.Store(c10, o + 2 * ld); Vector512.Store(c11, o + 3 * ld);
            o += 4 * ld;
            Vector512.Store(c12, o); Vector512.Store(c13, o + ld); Vector512.Store(c14, o + 2 * ld); Vector512.Store(c15, o + 3 * ld);
        }
    }

    /// <summary>Weight gradient on the implicit-GEMM grid: dW[k, j] = sum over images and positions n of dy[k, n]
    /// planes[Offsets[j] + n], with dy laid out on the grid (zeros in the extra columns). Both operands are
    /// contiguous along the reduction, so a dot-product kernel (4 x 4 outputs, 16-lane partial sums) needs no
    /// transposing pack; it runs over a batch of images at once so that its horizontal sums are amortised on small
    /// grids. Workers sum their images into partials, added in worker order (deterministic).</summary>
    void GridWeightGrad(ConvSpec spec, ConvGrid grid, float* xp, float* dyp, float* dwp, bool accumulate)
    {
        int ohw = spec.OutH * spec.OutW, ckk = spec.CPerGroup * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        int wide = (grid.Wide + 15) / 16 * 16;                              // reduction length per image, padded to 16
        int batch = Math.Clamp(1024 / wide, 1, 16);
        long slot = (grid.ScratchSize + 15) / 16 * 16;
        long wsize = spec.WeightSize;
        int workers = Math.Min(_parallel.Threads, spec.N);
        var partials = new float[workers][];
        ForImages(spec.N, (worker, n0, n1) =>
        {
            var part = partials[worker] = WorkerPartial(worker, (int)wsize);
            float* scratch = ColScratch(batch * (slot + (long)kg * wide), out _);
            float* dyAll = scratch + batch * slot;
            // The shifted reads run past the planes into a tail that must hold zeros (garbage times 0 could be NaN).
            new Span<float>(scratch, (int)(batch * (slot + (long)kg * wide))).Clear();
            fixed (float* pp = part)
            fixed (int* offsets = grid.Offsets)
                for (int n = n0; n < n1; n += batch)
                {
                    int nb = Math.Min(batch, n1 - n);
                    for (int g = 0; g < spec.Groups; g++)
                    {
                        for (int b = 0; b < nb; b++)
                        {
                            grid.Fill(spec, xp + ((long)(n + b) * spec.C + g * spec.CPerGroup) * hw, scratch + b * slot);
                            float* dyg = dyp + ((long)(n + b) * spec.K + g * kg) * ohw, dyb = dyAll + (long)b * kg * wide;
                            for (int k = 0; k < kg; k++)
                                for (int i = 0; i < spec.OutH; i++)
                                    CopyRun(dyg + (long)k * ohw + (long)i * spec.OutW, dyb + (long)k * wide + (long)i * grid.GridW, spec.OutW);
                        }
                        ShiftedDots(scratch, slot, offsets, dyAll, wide, nb, kg, ckk, pp + (long)g * kg * ckk);
                    }
                }
        });
        WriteWeightGradient(partials, spec, dwp, transposed: false, accumulate);
    }

    /// <summary>out[k, j] += sum over images b of dot(dy_b row k, planes_b + offsets[j]) over len (a multiple of
    /// 16); image b's planes start at planes + b slot and its dy at dy + b kg len. 4 x 4 blocks.</summary>
    static void ShiftedDots(float* plane, long slot, int* offsets, float* dy, int len, int images, int kg, int ckk, float* output)
    {
        long dyStride = (long)kg * len;
        int k = 0;
        for (; k + 4 <= kg; k += 4)
        {
            int j = 0;
            for (; j + 4 <= ckk; j += 4)
            {
                Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
                Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
                for (int b = 0; b < images; b++)
                {
                    float* a0 = dy + b * dyStride + (long)k * len, a1 = a0 + len, a2 = a1 + len, a3 = a2 + len;
                    float* pb = plane + b * slot;
                    float* b0 = pb + offsets[j], b1 = pb + offsets[j + 1], b2 = pb + offsets[j + 2], b3 = pb + offsets[j + 3];
                    for (int p = 0; p < len; p += 16)
                    {
                        var v0 = Vector512.Load(b0 + p); var v1 = Vector512.Load(b1 + p); var v2 = Vector512.Load(b2 + p); var v3 = Vector512.Load(b3 + p);
                        var u = Vector512.Load(a0 + p);
                        c00 = Vector512.FusedMultiplyAdd(u, v0, c00); c01 = Vector512.FusedMultiplyAdd(u, v1, c01); c02 = Vector512.FusedMultiplyAdd(u, v2, c02); c03 = Vector512.FusedMultiplyAdd(u, v3, c03);
                        u = Vector512.Load(a1 + p);
                        c10 = Vector512.FusedMultiplyAdd(u, v0, c10); c11 = Vector512.FusedMultiplyAdd(u, v1, c11); c12 = Vector512.FusedMultiplyAdd(u, v2, c12); c13 = Vector512.FusedMultiplyAdd(u, v3, c13);
                        u = Vector512.Load(a2 + p);
                        c20 = Vector512.FusedMultiplyAdd(u, v0, c20); c21 = Vector512.FusedMultiplyAdd(u, v1, c21); c22 = Vector512.FusedMultiplyAdd(u, v2, c22); c23 = Vector512.FusedMultiplyAdd(u, v3, c23);
                        u = Vector512.Load(a3 + p);
                        c30 = Vector512.FusedMultiplyAdd(u, v0, c30); c31 = Vector512.FusedMultiplyAdd(u, v1, c31); c32 = Vector512.FusedMultiplyAdd(u, v2, c32); c33 = Vector512.FusedMultiplyAdd(u, v3, c33);
                    }
                }
                float* o = output + (long)k * ckk + j;
                o[0] += Vector512.Sum(c00); o[1] += Vector512.Sum(c01); o[2] += Vector512.Sum(c02); o[3] += Vector512.Sum(c03); o += ckk;
                o[0] += Vector512.Sum(c10); o[1] += Vector512.Sum(c11); o[2] += Vector512.Sum(c12); o[3] += Vector512.Sum(c13); o += ckk;
                o[0] += Vector512.Sum(c20); o[1] += Vector512.Sum(c21); o[2] += Vector512.Sum(c22); o[3] += Vector512.Sum(c23); o += ckk;
                o[0] += Vector512.Sum(c30); o[1] += Vector512.Sum(c31); o[2] += Vector512.Sum(c32); o[3] += Vector512.Sum(c33);
            }
            for (; j < ckk; j++)
                for (int kk = k; kk < k + 4; kk++) output[(long)kk * ckk + j] += BatchDot(plane, slot, offsets[j], dy, dyStride, (long)kk * len, len, images);
        }
        for (; k < kg; k++)
            for (int j = 0; j < ckk; j++) output[(long)k * ckk + j] += BatchDot(plane, slot, offsets[j], dy, dyStride, (long)k * len, len, images);
    }

    static float BatchDot(float* plane, long slot, int offset, float* dy, long dyStride, long row, int len, int images)
    {
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < images; b++)
        {
            float* a = dy + b * dyStride + row, p = plane + b * slot + offset;
            for (int i = 0; i < len; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(p + i), acc);
        }
        return Vector512.Sum(acc);
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
                else if (cols == 32) { Vector512.Store(Vector512.Load(src), d); Vector512.Store(Vector512.Load(src + 16), d + 16); }
                else if (cols == 16 && nr == 16) { Vector256.Store(Vector256.Load(src), d); Vector256.Store(Vector256.Load(src + 8), d + 8); }
                else
                {
                    int j = 0;
                    for (; j < cols; j++) d[j] = src[j];
                    for (; j < nr; j++) d[j] = 0f;
                }
            }
        }
    }

    /// <summary>Input gradient on the implicit-GEMM grid (the adjoint of <see cref="Forward"/>): dCol = W^T dy with dy
    /// on the grid (zeros in the extra columns) for a batch of images, then each row k of dCol is added as a
    /// contiguous run into the plane gradient at Offsets[k] (a col2im whose every add is a vector run), and the
    /// plane gradient is read back through the padding and phase layout into dx.</summary>
    void GridBackwardInput(ConvSpec spec, ConvGrid grid, float* dyp, float* wp, float* dxp, bool accumulate)
    {
        int ohw = spec.OutH * spec.OutW, ckk = spec.CPerGroup * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        int batch = Math.Clamp(1024 / grid.Wide, 1, 16);
        long slot = (grid.ScratchSize + 15) / 16 * 16;
        ForImages(spec.N, (worker, n0, n1) =>
        {
            var gemm = WorkerGemm(worker);
            int wideAll = batch * grid.Wide;
            float* scratch = ColScratch(slot + (long)kg * wideAll + (long)ckk * wideAll, out _);
            float* dPlanes = scratch, dyGrid = scratch + slot, dCol = dyGrid + (long)kg * wideAll;
            new Span<float>(dyGrid, kg * wideAll).Clear();
            for (int n = n0; n < n1; n += batch)
            {
                int nb = Math.Min(batch, n1 - n), cols = nb * grid.Wide;
                for (int g = 0; g < spec.Groups; g++)
                {
                    for (int b = 0; b < nb; b++)
                    {
                        float* dyg = dyp + ((long)(n + b) * spec.K + g * kg) * ohw;
                        for (int k = 0; k < kg; k++)
                            for (int i = 0; i < spec.OutH; i++)
                                CopyRun(dyg + (long)k * ohw + (long)i * spec.OutW, dyGrid + (long)k * cols + (long)b * grid.Wide + (long)i * grid.GridW, spec.OutW);
                    }
                    gemm.Run(new GemmSpec(true, false, ckk, cols, kg), wp + (long)g * kg * ckk, dyGrid, dCol);
                    for (int b = 0; b < nb; b++)
                    {
                        new Span<float>(dPlanes, (int)grid.ScratchSize).Clear();
                        for (int k = 0; k < ckk; k++)
                        {
                            float* dst = dPlanes + grid.Offsets[k];
                            AddRun(dst, dCol + (long)k * cols + (long)b * grid.Wide, grid.Wide);
                        }
                        grid.Extract(spec, dPlanes, dxp + ((long)(n + b) * spec.C + g * spec.CPerGroup) * hw, accumulate);
                    }
                }
            }
        });
    }

    /// <summary>W' [C, K/G, R, S] per group with W'[c, k, r, q] = W[k, c, R-1-r, S-1-q]: the input gradient of a
    /// stride-1 convolution is the forward convolution of dy with W' and padding R-1-pad.</summary>
    float[] FlipTranspose(in ConvSpec s, float* w)
    {
        int cg = s.CPerGroup, kg = s.KPerGroup, rs = s.R * s.S;
        if (_flipped.Length < s.WeightSize) _flipped = GC.AllocateArray<float>((int)s.WeightSize, pinned: true);
        var t = _flipped;
        for (int g = 0; g < s.Groups; g++)
            for (int k = 0; k < kg; k++)
                for (int c = 0; c < cg; c++)
                    for (int r = 0; r < s.R; r++)
                        for (int q = 0; q < s.S; q++)
                            t[(((long)g * cg + c) * kg + k) * rs + (s.R - 1 - r) * s.S + (s.S - 1 - q)] = w[(((long)g * kg + k) * cg + c) * rs + r * s.S + q];
        return t;
    }

    protected override void Conv2dBackwardInputCore(in ConvSpec s, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate)
    {
        if (s.IsDepthwise && s.Stride == 1 && s.R == s.S && s.Pad <= s.R - 1)
        {
            // The input gradient of a stride-1 depthwise convolution is the depthwise convolution of dy with the
            // flipped kernel and padding R - 1 - pad.
            DepthwiseShifted(new ConvSpec(s.N, s.C, s.OutH, s.OutW, s.K, s.R, s.S, 1, s.R - 1 - s.Pad, s.Groups), P(dy), P(weight), P(dx), accumulate, flip: true);
            return;
        }
        if (s.IsDepthwise) { DepthwiseBackwardInput(s, P(dy), P(weight), P(dx), accumulate); return; }
        if (BackwardInputLanesSupported(s)) { BackwardInputLanes(s, P(dy), P(weight), P(dx), accumulate); return; }
        if (IsStridedPointwise(s))
        {
            var dxs = SubsampleScratch(s);
            Conv2dBackwardInputCore(Subsampled(s), dy, weight, dxs, accumulate: false);
            Subsample(s, P(dx), dxs.Pointer, scatter: true, accumulate);
            return;
        }
        if (s.Stride == 1 && s.R == s.S && s.Pad <= s.R - 1 && !IsPointwise(s))
        {
            var flipped = FlipTranspose(s, P(weight));
            var adjoint = new ConvSpec(s.N, s.K, s.OutH, s.OutW, s.C, s.R, s.S, 1, s.R - 1 - s.Pad, s.Groups);
            fixed (float* fp = flipped)
                if (LanesSupported(adjoint)) ForwardLanes(adjoint, P(dy), fp, P(dx), accumulate);
                else Forward(adjoint, P(dy), fp, P(dx), accumulate ? 1f : 0f);
            return;
        }
        if (s.Stride == 2) { GridBackwardInput(s, Grid(s), P(dy), P(weight), P(dx), accumulate); return; }
        var spec = s;
        float* dyp = P(dy), wp = P(weight), dxp = P(dx);
        int ohw = s.OutH * s.OutW, ckk = s.CPerGroup * s.R * s.S, hw = s.H * s.W;
        bool pointwise = IsPointwise(s);
        ForImages(s.N, (worker, n0, n1) =>
        {
            var gemm = WorkerGemm(worker);
            float* col = pointwise ? null : ColScratch((long)ckk * ohw, out _);
            for (int n = n0; n < n1; n++)
                for (int g = 0; g < spec.Groups; g++)
                {
                    float* dxg = dxp + ((long)n * spec.C + g * spec.CPerGroup) * hw;
                    float* wg = wp + (long)g * spec.KPerGroup * ckk, dyg = dyp + ((long)n * spec.K + g * spec.KPerGroup) * ohw;
                    if (pointwise)
                    {
                        // dx_g = W_g^T dy_g, written or added directly.
                        gemm.Run(new GemmSpec(true, false, ckk, ohw, spec.KPerGroup, Beta: accumulate ? 1f : 0f), wg, dyg, dxg);
                        continue;
                    }
                    gemm.Run(new GemmSpec(true, false, ckk, ohw, spec.KPerGroup), wg, dyg, col);
                    if (!accumulate) new Span<float>(dxg, spec.CPerGroup * hw).Clear();
                    Col2ImAdd(spec, col, dxg);
                }
        });
    }

    protected override void Conv2dBackwardWeightCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate)
    {
        if (s.IsDepthwise && s.Stride == 1) { DepthwiseShiftedWeightGrad(s, P(x), P(dy), P(dw), accumulate); return; }
        if (s.IsDepthwise) { DepthwiseBackwardWeight(s, P(x), P(dy), P(dw), accumulate); return; }
        if (IsStridedPointwise(s))
        {
            var xs = SubsampleScratch(s);
            Subsample(s, P(x), xs.Pointer, scatter: false, accumulate: false);
            Conv2dBackwardWeightCore(Subsampled(s), xs, dy, dw, accumulate);
            return;
        }
        if (WeightGradLanesSupported(s)) { WeightGradLanes(s, P(x), P(dy), P(dw), accumulate); return; }
        if (ConvGrid.Supports(s) && Vector512.IsHardwareAccelerated && Grid(s) is { } grid)
        {
            GridWeightGrad(s, grid, P(x), P(dy), P(dw), accumulate);
            return;
        }
        var spec = s;
        float* xp = P(x), dyp = P(dy), dwp = P(dw);
        int ohw = s.OutH * s.OutW, ckk = s.CPerGroup * s.R * s.S, hw = s.H * s.W;
        long wsize = s.WeightSize;
        int workers = Math.Min(_parallel.Threads, s.N);
        bool transposed = s.KPerGroup >= 32;
        // Each worker sums its images into its own partial; partials are added in worker order (deterministic).
        var partials = new float[workers][];
        ForImages(s.N, (worker, n0, n1) =>
        {
            var gemm = WorkerGemm(worker);
            var part = partials[worker] = WorkerPartial(worker, (int)wsize);
            float* pp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref part[0]);
            float* col = IsPointwise(spec) ? null : ColScratch((long)ckk * ohw, out _);
            for (int n = n0; n < n1; n++)
                for (int g = 0; g < spec.Groups; g++)
                {
                    float* xg = xp + ((long)n * spec.C + g * spec.CPerGroup) * hw;
                    float* b = xg;
                    if (col != null) { Im2Col(spec, xg, col); b = col; }
                    float* dyg = dyp + ((long)n * spec.K + g * spec.KPerGroup) * ohw, pg = pp + (long)g * spec.KPerGroup * ckk;
                    // With at least 32 output channels, dW_g^T [ckk, K/G] += col dy_g^T packs the long col matrix as A
                    // (contiguous row panels) instead of transposing it into B panels; with fewer, the B panels
                    // of dy_g^T would be less than one 32-wide micro-kernel tile, so dW_g += dy_g col^T is faster.
                    if (transposed) gemm.Run(new GemmSpec(false, true, ckk, spec.KPerGroup, ohw, Beta: 1f), b, dyg, pg);
                    else gemm.Run(new GemmSpec(false, true, spec.KPerGroup, ckk, ohw, Beta: 1f), dyg, b, pg);
                }
        });
        WriteWeightGradient(partials, s, dwp, transposed, accumulate);
    }

    /// <summary>dw (+)= the sum of the workers' partials, added in worker order (deterministic). Transposed partials
    /// hold each group's block as [C/G R S, K/G] and are transposed back to the weight layout [K/G, C/G R S].</summary>
    void WriteWeightGradient(float[][] partials, in ConvSpec s, float* dwp, bool transposed, bool accumulate)
    {
        int wsize = (int)s.WeightSize, kg = s.KPerGroup, ckk = s.CPerGroup * s.R * s.S;
        if (!transposed)
        {
            if (!accumulate) new Span<float>(dwp, wsize).Clear();
            foreach (var part in partials)
                fixed (float* pp = part) BinaryRun(BinaryOp.Add, dwp, pp, dwp, wsize);
            return;
        }
        var sum = partials[0];
        for (int i = 1; i < partials.Length; i++)
            fixed (float* a = sum, b = partials[i]) BinaryRun(BinaryOp.Add, a, b, a, wsize);
        for (int g = 0; g < s.Groups; g++)
            for (int k = 0; k < kg; k++)
                for (int j = 0; j < ckk; j++)
                {
                    float v = sum[(long)g * kg * ckk + (long)j * kg + k];
                    float* d = dwp + (long)g * kg * ckk + (long)k * ckk + j;
                    *d = accumulate ? *d + v : v;
                }
    }

    /// <summary>col[(c R + r) S + s, oh OW + ow] = x[c, oh stride - pad + r, ow stride - pad + s], zero outside.</summary>
    static void Im2Col(in ConvSpec s, float* x, float* col)
    {
        int oh = s.OutH, ow = s.OutW;
        for (int c = 0; c < s.CPerGroup; c++)
            for (int r = 0; r < s.R; r++)
                for (int q = 0; q < s.S; q++)
                {
                    float* dst = col + (((long)c * s.R + r) * s.S + q) * oh * ow;
                    // Output columns whose input column is inside the image: [lo, hi).
                    (int lo, int hi) = ValidRange(ow, s.Stride, q - s.Pad, s.W);
                    for (int i = 0; i < oh; i++, dst += ow)
                    {
                        int ih = i * s.Stride - s.Pad + r;
                        if ((uint)ih >= (uint)s.H || lo >= hi) { new Span<float>(dst, ow).Clear(); continue; }
                        float* src = x + ((long)c * s.H + ih) * s.W + q - s.Pad;
                        for (int j = 0; j < lo; j++) dst[j] = 0f;
                        if (s.Stride == 1) CopyRun(src + lo, dst + lo, hi - lo);
                        else for (int j = lo; j < hi; j++) dst[j] = src[j * s.Stride];
                        for (int j = hi; j < ow; j++) dst[j] = 0f;
                    }
                }
    }

    /// <summary>dst[i] += src[i].</summary>
    static void AddRun(float* dst, float* src, int n)
    {
        int i = 0;
        for (; i <= n - 16; i += 16) Vector512.Store(Vector512.Load(dst + i) + Vector512.Load(src + i), dst + i);
        for (; i < n; i++) dst[i] += src[i];
    }

    /// <summary>Copies a short run (one image row, 7 to 30 floats here) without a call into the runtime.</summary>
    static void CopyRun(float* src, float* dst, int n)
    {
        int i = 0;
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
        for (; i < n; i++) dst[i] = src[i];
    }

    /// <summary>The adjoint of <see cref="Im2Col"/>: dx[c, ih, iw] += col[...] for every window position.</summary>
    void Col2ImAdd(in ConvSpec s, float* col, float* dx)
    {
        int oh = s.OutH, ow = s.OutW;
        for (int c = 0; c < s.CPerGroup; c++)
            for (int r = 0; r < s.R; r++)
                for (int q = 0; q < s.S; q++)
                {
                    float* src = col + (((long)c * s.R + r) * s.S + q) * oh * ow;
                    (int lo, int hi) = ValidRange(ow, s.Stride, q - s.Pad, s.W);
                    if (lo >= hi) continue;
                    for (int i = 0; i < oh; i++, src += ow)
                    {
                        int ih = i * s.Stride - s.Pad + r;
                        if ((uint)ih >= (uint)s.H) continue;
                        float* dst = dx + ((long)c * s.H + ih) * s.W + q - s.Pad;
                        if (s.Stride == 1) BinaryRun(BinaryOp.Add, dst + lo, src + lo, dst + lo, hi - lo);
                        else for (int j = lo; j < hi; j++) dst[j * s.Stride] += src[j];
                    }
                }
    }

    /// <summary>The j in [0, outLen) with 0 &lt;= j stride + offset &lt; inLen.</summary>
    static (int Lo, int Hi) ValidRange(int outLen, int stride, int offset, int inLen)
    {
        int lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
        int hi = inLen - offset <= 0 ? 0 : Math.Min(outLen, (inLen - offset - 1) / stride + 1);
        return (Math.Min(lo, outLen), Math.Max(hi, Math.Min(lo, outLen)));
    }

    // ---- depthwise: direct loops over planes ----------------------------------------------------------------

    /// <summary>Stride-1 depthwise convolution on the padded-width grid: each plane is copied into a zero-padded
    /// buffer of width Wp, and the output row-major over (OH x Wp) is R S whole-plane multiply-adds of shifted
    /// copies (no per-row bounds), then compacted into y (added when accumulating). With flip, kernel
    /// element (r, q) is read as (R-1-r, S-1-q).</summary>
    void DepthwiseShifted(ConvSpec s, float* x, float* w, float* y, bool accumulate, bool flip)
    {
        int hp = s.H + 2 * s.Pad, wp = s.W + 2 * s.Pad, wide = s.OutH * wp, hw = s.H * s.W, ohw = s.OutH * s.OutW, rs = s.R * s.S;
        long planeSize = (long)hp * wp + s.S + 16;
        _parallel.For(s.N * s.C, (long)wide * rs * 2, (p0, p1) =>
        {
            float* scratch = ColScratch(planeSize + wide + 16, out _);
            float* plane = scratch, acc = scratch + planeSize;
            for (int p = p0; p < p1; p++)
            {
                int c = p % s.C;
                new Span<float>(plane, (int)planeSize).Clear();
                for (int i = 0; i < s.H; i++) CopyRun(x + (long)p * hw + (long)i * s.W, plane + (long)(i + s.Pad) * wp + s.Pad, s.W);
                new Span<float>(acc, wide).Clear();
                float* wc = w + (long)c * rs;
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                        Axpy(acc, plane + (long)r * wp + q, flip ? wc[(s.R - 1 - r) * s.S + (s.S - 1 - q)] : wc[r * s.S + q], wide);
                float* yp = y + (long)p * ohw;
                for (int i = 0; i < s.OutH; i++)
                {
                    if (accumulate) BinaryRun(BinaryOp.Add, yp + (long)i * s.OutW, acc + (long)i * wp, yp + (long)i * s.OutW, s.OutW);
                    else CopyRun(acc + (long)i * wp, yp + (long)i * s.OutW, s.OutW);
                }
            }
        });
    }

    /// <summary>Stride-1 depthwise weight gradient: dw[c, r, q] = sum over images of dot(dy on the padded-width
    /// grid, zero in the extra columns; the padded plane shifted by r Wp + q). Parallel over channels, each summing
    /// its images in order (deterministic).</summary>
    void DepthwiseShiftedWeightGrad(ConvSpec s, float* x, float* dy, float* dw, bool accumulate)
    {
        int hp = s.H + 2 * s.Pad, wp = s.W + 2 * s.Pad, wide = s.OutH * wp, hw = s.H * s.W, ohw = s.OutH * s.OutW, rs = s.R * s.S;
        long planeSize = (long)hp * wp + s.S + (s.R - 1) * wp + 16;
        _parallel.For(s.C, (long)s.N * wide * rs * 2, (c0, c1) =>
        {
            float* scratch = ColScratch(planeSize + wide + 16, out _);
            float* plane = scratch, g = scratch + planeSize;
            Span<double> sums = stackalloc double[rs];
            for (int c = c0; c < c1; c++)
            {
                sums.Clear();
                for (int n = 0; n < s.N; n++)
                {
                    long p = (long)n * s.C + c;
                    new Span<float>(scratch, (int)(planeSize + wide)).Clear();
                    for (int i = 0; i < s.H; i++) CopyRun(x + p * hw + (long)i * s.W, plane + (long)(i + s.Pad) * wp + s.Pad, s.W);
                    for (int i = 0; i < s.OutH; i++) CopyRun(dy + p * ohw + (long)i * s.OutW, g + (long)i * wp, s.OutW);
                    for (int r = 0; r < s.R; r++)
                        for (int q = 0; q < s.S; q++) sums[r * s.S + q] += Dot(g, plane + (long)r * wp + q, wide);
                }
                for (int k = 0; k < rs; k++)
                {
                    float* d = dw + (long)c * rs + k;
                    *d = accumulate ? *d + (float)sums[k] : (float)sums[k];
                }
            }
        });
    }

    void DepthwiseForward(ConvSpec s, float* x, float* w, float* y)
    {
        int ohw = s.OutH * s.OutW, hw = s.H * s.W, rs = s.R * s.S;
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
                        (int lo, int hi) = ValidRange(s.OutW, s.Stride, q - s.Pad, s.W);
                        for (int i = 0; i < s.OutH; i++)
                        {
                            int ih = i * s.Stride - s.Pad + r;
                            if ((uint)ih >= (uint)s.H) continue;
                            float* src = xs + (long)ih * s.W + q - s.Pad, dst = ys + (long)i * s.OutW;
                            if (s.Stride == 1) Axpy(dst + lo, src + lo, wv, hi - lo);
                            else for (int j = lo; j < hi; j++) dst[j] += wv * src[j * s.Stride];
                        }
                    }
            }
        });
    }

    void DepthwiseBackwardInput(ConvSpec s, float* dy, float* w, float* dx, bool accumulate)
    {
        int ohw = s.OutH * s.OutW, hw = s.H * s.W, rs = s.R * s.S;
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
                        (int lo, int hi) = ValidRange(s.OutW, s.Stride, q - s.Pad, s.W);
                        for (int i = 0; i < s.OutH; i++)
                        {
                            int ih = i * s.Stride - s.Pad + r;
                            if ((uint)ih >= (uint)s.H) continue;
                            float* dst = ds + (long)ih * s.W + q - s.Pad, src = gs + (long)i * s.OutW;
                            if (s.Stride == 1) Axpy(dst + lo, src + lo, wv, hi - lo);
                            else for (int j = lo; j < hi; j++) dst[j * s.Stride] += wv * src[j];
                        }
                    }
            }
        });
    }

    void DepthwiseBackwardWeight(ConvSpec s, float* x, float* dy, float* dw, bool accumulate)
    {
        int ohw = s.OutH * s.OutW, hw = s.H * s.W, rs = s.R * s.S;
        // Parallel over channels; each channel sums its images in order, so the result is deterministic.
        _parallel.For(s.C, (long)s.N * ohw * rs * 2, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                    {
                        (int lo, int hi) = ValidRange(s.OutW, s.Stride, q - s.Pad, s.W);
                        double acc = 0;
                        for (int n = 0; n < s.N; n++)
                        {
                            long p = (long)n * s.C + c;
                            for (int i = 0; i < s.OutH; i++)
                            {
                                int ih = i * s.Stride - s.Pad + r;
                                if ((uint)ih >= (uint)s.H) continue;
                                float* src = x + p * hw + (long)ih * s.W + q - s.Pad, g = dy + p * ohw + (long)i * s.OutW;
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
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(x + i), va, Vector256.Load(y + i)), y + i);
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

    // ---- batch norm -------------------------------------------------------------------------------------------

    protected override void BatchNormCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training)
    {
        var spec = s;
        float* xp = P(x), gp = P(gamma), bp = P(beta), yp = P(y), mp = P(saveMean), ip = P(saveInvStd), rmp = P(runningMean), rvp = P(runningVar);
        long m = (long)s.N * s.Spatial;
        _parallel.For(s.C, m * 4, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                float mean, invStd;
                if (training)
                {
                    // Two passes in float64 (mean, then squared deviations): exact enough for any activation scale.
                    double sum = 0;
                    for (int n = 0; n < spec.N; n++) sum += RowSum<V256>(xp + ((long)n * spec.C + c) * spec.Spatial, spec.Spatial);
                    double mu = sum / m, sq = 0;
                    for (int n = 0; n < spec.N; n++) sq += SquaredDeviation(xp + ((long)n * spec.C + c) * spec.Spatial, spec.Spatial, (float)mu);
                    double var = sq / m;
                    mean = (float)mu; invStd = (float)(1 / Math.Sqrt(var + spec.Epsilon));
                    rmp[c] = (1 - spec.Momentum) * rmp[c] + spec.Momentum * mean;
                    rvp[c] = (1 - spec.Momentum) * rvp[c] + spec.Momentum * (float)(sq / (m - 1));
                }
                else { mean = rmp[c]; invStd = 1f / MathF.Sqrt(rvp[c] + spec.Epsilon); }
                mp[c] = mean; ip[c] = invStd;
                // y = x * a + b with a = gamma * invStd, b = beta - mean * a.
                float a = gp[c] * invStd, b = bp[c] - mean * a;
                for (int n = 0; n < spec.N; n++)
                {
                    long o = ((long)n * spec.C + c) * spec.Spatial;
                    if (spec.Activation == NormActivation.None) ScaleShift(xp + o, yp + o, a, b, spec.Spatial);
                    else ScaleShiftClamp(xp + o, yp + o, a, b, spec.Spatial, spec.Cap);
                }
            }
        });
    }

    /// <summary>sum (x - mu)^2 over one row, eight lanes at a time.</summary>
    static double SquaredDeviation(float* x, int n, float mu)
    {
        int i = 0;
        var acc = Vector256<float>.Zero; var vm = Vector256.Create(mu);
        for (; i <= n - 8; i += 8) { var d = Vector256.Load(x + i) - vm; acc = Vector256.FusedMultiplyAdd(d, d, acc); }
        double s = Vector256.Sum(acc);
        for (; i < n; i++) { double d = x[i] - mu; s += d * d; }
        return s;
    }

    /// <summary>(sum g, sum g (x - mean)) over one row.</summary>
    static (double, double) GradSums(float* g, float* x, int n, float mean)
    {
        int i = 0;
        var sg = Vector256<float>.Zero; var sx = Vector256<float>.Zero; var vm = Vector256.Create(mean);
        for (; i <= n - 8; i += 8)
        {
            var gv = Vector256.Load(g + i);
            sg += gv;
            sx = Vector256.FusedMultiplyAdd(gv, Vector256.Load(x + i) - vm, sx);
        }
        double a = Vector256.Sum(sg), b = Vector256.Sum(sx);
        for (; i < n; i++) { a += g[i]; b += g[i] * (x[i] - mean); }
        return (a, b);
    }

    static void BatchNormGradRow(float* g, float* x, float* dx, int n, float a1, float a2, float a3, bool accumulate)
    {
        int i = 0;
        var v1 = Vector256.Create(a1); var v2 = Vector256.Create(a2); var v3 = Vector256.Create(a3);
        for (; i <= n - 8; i += 8)
        {
            var v = Vector256.FusedMultiplyAdd(Vector256.Load(g + i), v1, Vector256.FusedMultiplyAdd(Vector256.Load(x + i), v2, v3));
            if (accumulate) v += Vector256.Load(dx + i);
            Vector256.Store(v, dx + i);
        }
        for (; i < n; i++)
        {
            float v = g[i] * a1 + x[i] * a2 + a3;
            dx[i] = accumulate ? dx[i] + v : v;
        }
    }

    /// <summary>y = min(max(x a + b, 0), cap): batch norm with a fused ReLU (cap = infinity) or ReLU6.</summary>
    static void ScaleShiftClamp(float* x, float* y, float a, float b, int n, float cap)
    {
        int i = 0;
        var va = Vector256.Create(a); var vb = Vector256.Create(b); var vcap = Vector256.Create(cap);
        for (; i <= n - 8; i += 8)
            Vector256.Store(Vector256.Min(Vector256.Max(Vector256.FusedMultiplyAdd(Vector256.Load(x + i), va, vb), Vector256<float>.Zero), vcap), y + i);
        for (; i < n; i++) y[i] = Math.Min(Math.Max(MathF.FusedMultiplyAdd(x[i], a, b), 0f), cap);
    }

    /// <summary>dy where the fused activation passed its input (0 &lt; y &lt; cap), else 0.</summary>
    static Vector256<float> Masked(Vector256<float> g, Vector256<float> y, Vector256<float> cap) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(y, Vector256<float>.Zero) & Vector256.LessThan(y, cap), g, Vector256<float>.Zero);

    /// <summary>(sum g, sum g (x - mean)) over one row, g masked by the fused activation's output y.</summary>
    static (double, double) GradSumsMasked(float* g, float* x, float* y, int n, float mean, float cap)
    {
        int i = 0;
        var sg = Vector256<float>.Zero; var sx = Vector256<float>.Zero; var vm = Vector256.Create(mean); var vcap = Vector256.Create(cap);
        for (; i <= n - 8; i += 8)
        {
            var gv = Masked(Vector256.Load(g + i), Vector256.Load(y + i), vcap);
            sg += gv;
            sx = Vector256.FusedMultiplyAdd(gv, Vector256.Load(x + i) - vm, sx);
        }
        double a = Vector256.Sum(sg), b = Vector256.Sum(sx);
        for (; i < n; i++) { float gi = y[i] > 0f && y[i] < cap ? g[i] : 0f; a += gi; b += gi * (x[i] - mean); }
        return (a, b);
    }

    static void BatchNormGradRowMasked(float* g, float* x, float* y, float* dx, int n, float a1, float a2, float a3, float cap, bool accumulate)
    {
        int i = 0;
        var v1 = Vector256.Create(a1); var v2 = Vector256.Create(a2); var v3 = Vector256.Create(a3); var vcap = Vector256.Create(cap);
        for (; i <= n - 8; i += 8)
        {
            var gv = Masked(Vector256.Load(g + i), Vector256.Load(y + i), vcap);
            var v = Vector256.FusedMultiplyAdd(gv, v1, Vector256.FusedMultiplyAdd(Vector256.Load(x + i), v2, v3));
            if (accumulate) v += Vector256.Load(dx + i);
            Vector256.Store(v, dx + i);
        }
        for (; i < n; i++)
        {
            float gi = y[i] > 0f && y[i] < cap ? g[i] : 0f;
            float v = gi * a1 + x[i] * a2 + a3;
            dx[i] = accumulate ? dx[i] + v : v;
        }
    }

    static void ScaleShift(float* x, float* y, float a, float b, int n)
    {
        int i = 0;
        var va = Vector256.Create(a); var vb = Vector256.Create(b);
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(x + i), va, vb), y + i);
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i], a, b);
    }

    protected override void BatchNormBackwardCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool training, bool accumulate,
        DeviceBuffer<float>? y)
    {
        var spec = s;
        float* xp = P(x), gp = P(dy), gam = P(gamma), mp = P(saveMean), ip = P(saveInvStd), dxp = P(dx), dgp = P(dGamma), dbp = P(dBeta);
        float* yp = y == null ? null : P(y);
        bool masked = spec.Activation != NormActivation.None;
        float cap = spec.Cap;
        long m = (long)s.N * s.Spatial;
        _parallel.For(s.C, m * 6, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                float mean = mp[c], invStd = ip[c];
                // sum(dy) and sum(dy * (x - mean)); xhat = (x - mean) invStd.
                double sdy = 0, sdx = 0;
                for (int n = 0; n < spec.N; n++)
                {
                    long o = ((long)n * spec.C + c) * spec.Spatial;
                    var (a, b) = masked ? GradSumsMasked(gp + o, xp + o, yp + o, spec.Spatial, mean, cap) : GradSums(gp + o, xp + o, spec.Spatial, mean);
                    sdy += a; sdx += b;
                }
                dbp[c] = (float)sdy;
                dgp[c] = (float)(sdx * invStd);
                // Training: dx = gamma invStd (dy - mean(dy) - xhat mean(dy xhat)); evaluation: dx = gamma invStd dy.
                float k = gam[c] * invStd;
                float mdy = training ? (float)(sdy / m) : 0f;
                float cx = training ? (float)(sdx / m) * invStd * invStd : 0f;
                // dx = k dy - k cx x + k (cx mean - mdy): one FMA pair per element.
                float a1 = k, a2 = -k * cx, a3 = k * (cx * mean - mdy);
                for (int n = 0; n < spec.N; n++)
                {
                    long o = ((long)n * spec.C + c) * spec.Spatial;
                    if (masked) BatchNormGradRowMasked(gp + o, xp + o, yp + o, dxp + o, spec.Spatial, a1, a2, a3, cap, accumulate);
                    else BatchNormGradRow(gp + o, xp + o, dxp + o, spec.Spatial, a1, a2, a3, accumulate);
                }
            }
        });
    }

    // ---- pooling and dropout ----------------------------------------------------------------------------------

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

    protected override void DropoutCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float p, ulong seed)
    {
        float* xp = P(x), yp = P(y);
        float scale = 1f / (1f - p);
        _parallel.For(count, 16, (s, e) =>
        {
            for (int i = s; i < e; i++) yp[i] = ScalarMath.DropoutKeep(seed, (ulong)i, p) ? xp[i] * scale : 0f;
        }, ElementwiseChunk);
    }
}
