using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Convolution dispatch on the CPU: each pass asks the plan (<see cref="ConvPlanner"/>, cached per shape,
/// or the forced algorithm where it supports the shape) and runs that algorithm. This file also holds the GEMM
/// family (<see cref="ConvAlgorithm.Pointwise"/>, <see cref="ConvAlgorithm.StridedPointwise"/>,
/// <see cref="ConvAlgorithm.Im2col"/>) and the per-worker scratch the other convolution files share. Threads take
/// whole images, each with its own single-threaded GEMM and scratch.
/// The other algorithms: CpuConvGrid.cs (Grid, GridDirect), CpuConvLanes.cs (Lanes), CpuConvWinograd.cs, CpuDepthwise.cs.</summary>
public unsafe partial class CpuBackend
{
    // ---- the plan ---------------------------------------------------------------------------------------------

    readonly Dictionary<(ConvSpec, ConvPass), ConvAlgorithm> _plans = [];
    ConvAlgorithm? _forcedConv;

    /// <summary>Runs every convolution whose shape it supports with this algorithm (others keep their default);
    /// null restores the defaults. For A/B timings (`--conv`) and the per-algorithm kernel check.</summary>
    public ConvAlgorithm? ForcedConvAlgorithm
    {
        get => _forcedConv;
        set { lock (_plans) { _forcedConv = value; _plans.Clear(); } }
    }

    /// <summary>The vector width in floats the planner plans for.</summary>
    int Lanes => _use512 ? 16 : 8;

    /// <summary>The algorithm that runs this pass of this shape on this backend.</summary>
    public ConvAlgorithm ConvPlan(in ConvSpec s, ConvPass pass)
    {
        lock (_plans)
        {
            if (_plans.TryGetValue((s, pass), out var a)) return a;
            a = _forcedConv is { } f && ConvPlanner.Supports(f, s, pass) ? f : ConvPlanner.Choose(s, pass, Lanes);
            _plans[(s, pass)] = a;
            return a;
        }
    }

    protected override string ConvAlgorithmLabel(in ConvSpec s, ConvPass pass) => ConvPlanner.Name(ConvPlan(s, pass));

    protected override void Conv2dCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y, DeviceBuffer<float>? channelStats)
    {
        float* xp = P(x), wp = P(weight), yp = P(y);
        double* rows = channelStats == null ? null : RowStatsScratch(s.N * s.K);
        bool rowsDone = false;   // whether the algorithm formed the row statistics as it wrote the rows
        switch (ConvPlan(s, ConvPass.Forward))
        {
            case ConvAlgorithm.Depthwise: DepthwiseForward(s, xp, wp, yp, accumulate: false, flip: false); break;
            case ConvAlgorithm.DepthwiseLoops: DepthwiseLoopsForward(s, xp, wp, yp); break;
            case ConvAlgorithm.Lanes: ForwardLanes(s, xp, wp, yp, accumulate: false, rows); rowsDone = true; break;
            case ConvAlgorithm.Grid: ForwardGrid(s, xp, wp, yp, beta: 0f, direct: false, rows); rowsDone = true; break;
            case ConvAlgorithm.GridDirect: ForwardGrid(s, xp, wp, yp, beta: 0f, direct: true, rows); rowsDone = true; break;
            case ConvAlgorithm.Winograd: ForwardWinograd(s, xp, wp, yp, accumulate: false, rows); rowsDone = true; break;
            case ConvAlgorithm.StridedPointwise:
                var xs = SubsampleScratch(s);
                Subsample(s, xp, xs.Pointer, scatter: false, accumulate: false);
                ForwardGemm(Subsampled(s), xs.Pointer, wp, yp);
                break;
            default: ForwardGemm(s, xp, wp, yp); break;   // Pointwise, Im2col
        }
        if (rows == null) return;
        if (!rowsDone) AllRowStats(s, yp, rows);
        CombineRowStats(rows, s.N, s.K, s.OutH * s.OutW, P(channelStats!));
    }

    protected override void Conv2dBackwardInputCore(in ConvSpec s, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate)
    {
        float* dyp = P(dy), wp = P(weight), dxp = P(dx);
        var algorithm = ConvPlan(s, ConvPass.InputGrad);
        switch (algorithm)
        {
            case ConvAlgorithm.Depthwise: DepthwiseBackwardInput(s, dyp, wp, dxp, accumulate); return;
            case ConvAlgorithm.DepthwiseLoops: DepthwiseLoopsBackwardInput(s, dyp, wp, dxp, accumulate); return;
            case ConvAlgorithm.StridedPointwise:
                var dxs = SubsampleScratch(s);
                BackwardInputGemm(Subsampled(s), dyp, wp, dxs.Pointer, accumulate: false);
                Subsample(s, dxp, dxs.Pointer, scatter: true, accumulate);
                return;
            case ConvAlgorithm.Lanes when !ConvPlanner.Flippable(s): BackwardInputLanes(s, dyp, wp, dxp, accumulate); return;
            case ConvAlgorithm.Grid when !ConvPlanner.Flippable(s): GridBackwardInput(s, Grid(s), dyp, wp, dxp, accumulate); return;
            case ConvAlgorithm.Lanes or ConvAlgorithm.Grid or ConvAlgorithm.GridDirect or ConvAlgorithm.Winograd:
                // Stride 1: the forward convolution of dy with the flipped, transposed kernel.
                var adjoint = ConvPlanner.Adjoint(s);
                fixed (float* fp = FlipTranspose(s, wp))
                    if (algorithm == ConvAlgorithm.Lanes) ForwardLanes(adjoint, dyp, fp, dxp, accumulate);
                    else if (algorithm == ConvAlgorithm.Winograd) ForwardWinograd(adjoint, dyp, fp, dxp, accumulate, rowStats: null);
                    else ForwardGrid(adjoint, dyp, fp, dxp, accumulate ? 1f : 0f, direct: algorithm == ConvAlgorithm.GridDirect);
                return;
            default: BackwardInputGemm(s, dyp, wp, dxp, accumulate); return;   // Pointwise, Im2col
        }
    }

    protected override void Conv2dBackwardWeightCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate)
    {
        float* xp = P(x), dyp = P(dy), dwp = P(dw);
        switch (ConvPlan(s, ConvPass.WeightGrad))
        {
            case ConvAlgorithm.Depthwise: DepthwiseWeightGrad(s, xp, dyp, dwp, accumulate); break;
            case ConvAlgorithm.DepthwiseLoops: DepthwiseLoopsWeightGrad(s, xp, dyp, dwp, accumulate); break;
            case ConvAlgorithm.Lanes: WeightGradLanes(s, xp, dyp, dwp, accumulate); break;
            case ConvAlgorithm.Grid: GridWeightGrad(s, Grid(s), xp, dyp, dwp, accumulate); break;
            case ConvAlgorithm.Winograd: WeightGradWinograd(s, xp, dyp, dwp, accumulate); break;
            case ConvAlgorithm.StridedPointwise:
                var xs = SubsampleScratch(s);
                Subsample(s, xp, xs.Pointer, scatter: false, accumulate: false);
                WeightGradGemm(Subsampled(s), xs.Pointer, dyp, dwp, accumulate);
                break;
            default: WeightGradGemm(s, xp, dyp, dwp, accumulate); break;   // Pointwise, Im2col
        }
    }

    // ---- per-worker scratch -----------------------------------------------------------------------------------

    CpuGemm[]? _workerGemms;
    [ThreadStatic] static float[]? t_col;

    /// <summary>One single-threaded GEMM per worker: each owns its packing buffers, so workers never share them.</summary>
    CpuGemm WorkerGemm(int worker)
    {
        var gemms = _workerGemms ??= Enumerable.Range(0, _parallel.Threads).Select(_ => new CpuGemm(new CpuParallel(1), _use512, forceVector512: _use512)).ToArray();
        return gemms[worker];
    }

    float[][] _partials = [];
    readonly object _partialsLock = new();

    /// <summary>A zeroed weight-gradient partial for one image block, reused across calls (no allocation per step).</summary>
    float[] BlockPartial(int block, int size)
    {
        float[]? p;
        lock (_partialsLock)
        {
            if (_partials.Length <= block) Array.Resize(ref _partials, block + 1);
            p = _partials[block];
            if (p == null || p.Length < size) _partials[block] = p = GC.AllocateArray<float>(size, pinned: true);
        }
        Array.Clear(p, 0, size);
        return p;
    }

    /// <summary>A pinned per-thread column buffer; the thread-static reference keeps it alive.</summary>
    static float* ColScratch(long size, out float[] keepAlive)
    {
        var s = t_col;
        if (s == null || s.Length < size) t_col = s = GC.AllocateArray<float>((int)Math.Max(size, 4096), pinned: true);
        keepAlive = s;
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref s[0]);
    }

    /// <summary>A batch split into fixed blocks of images, handed out to the workers first come, first served.
    /// The blocks depend only on the batch size and the kernel's grain, never on the thread count or on timing, so
    /// every image (and every weight-gradient partial, one per block) is computed the same way on any schedule.</summary>
    internal sealed class ImageBlocks
    {
        /// <summary>Each block takes this fraction of the images still left (rounded up to the grain), down to a
        /// thirty-second of the batch: large blocks first, small ones last, so the worker that finishes first waits
        /// for at most a small block. Eight equal blocks left it waiting for up to an eighth of the pass (the spin
        /// loop was 5 % of the CPU time in the layer benchmarks).</summary>
        const int Divisor = 4;
        readonly int[] _starts;   // block b holds images [_starts[b], _starts[b + 1])
        int _next;

        public ImageBlocks(int images, int grain)
        {
            grain = Math.Max(1, grain);
            int smallest = RoundUp(Math.Max(1, images / 32), grain);
            var starts = new List<int> { 0 };
            for (int at = 0; at < images;)
            {
                at = Math.Min(images, at + Math.Max(smallest, RoundUp((images - at + Divisor - 1) / Divisor, grain)));
                starts.Add(at);
            }
            _starts = [.. starts];
            Count = _starts.Length - 1;

            static int RoundUp(int v, int g) => (v + g - 1) / g * g;
        }

        public int Count { get; }

        /// <summary>The next block's index and images [n0, n1); false when all are taken.</summary>
        public bool Take(out int block, out int n0, out int n1)
        {
            block = Interlocked.Increment(ref _next) - 1;
            bool any = block < Count;
            n0 = any ? _starts[block] : 0;
            n1 = any ? _starts[block + 1] : 0;
            return any;
        }
    }

    /// <summary>Runs body(worker, blocks) on each worker: it sets up its scratch once, then takes blocks of images
    /// (multiples of grain, the kernel's own image batch) until none is left.</summary>
    void ForImages(int images, int grain, Action<int, ImageBlocks> body) => ForImages(new ImageBlocks(images, grain), body);

    void ForImages(ImageBlocks blocks, Action<int, ImageBlocks> body)
    {
        int workers = Math.Min(_parallel.Threads, blocks.Count);
        if (workers <= 1) { body(0, blocks); return; }
        _parallel.Chunks(workers, w => body(w, blocks));
    }

    /// <summary>partials[0] += partials[1] + ... over the first size elements, each element in block order
    /// whichever thread runs its range (deterministic); 8 partials of a 64-channel 3x3 layer are 1.2 MB, read on
    /// both cores. Returns partials[0].</summary>
    float[] SumPartials(float[][] partials, int size)
    {
        var sum = partials[0];
        _parallel.For(size, partials.Length, (i0, i1) =>
        {
            fixed (float* a = sum)
                for (int i = 1; i < partials.Length; i++)
                    fixed (float* b = partials[i]) BinaryRun(BinaryOp.Add, a + i0, b + i0, a + i0, i1 - i0);
        });
        return sum;
    }

    /// <summary>dw (+)= the sum of the blocks' partials, added in block order (deterministic). Transposed partials
    /// hold each group's block as [C/G R S, K/G] and are transposed back to the weight layout [K/G, C/G R S].</summary>
    void WriteWeightGradient(float[][] partials, in ConvSpec s, float* dwp, bool transposed, bool accumulate)
    {
        int wsize = (int)s.WeightSize, kg = s.KPerGroup, ckk = s.CPerGroup * s.R * s.S, groups = s.Groups;
        var sum = SumPartials(partials, wsize);
        if (!transposed)
        {
            fixed (float* a = sum)
                if (accumulate) BinaryRun(BinaryOp.Add, dwp, a, dwp, wsize);
                else new Span<float>(a, wsize).CopyTo(new Span<float>(dwp, wsize));
            return;
        }
        _parallel.For(groups * kg, ckk, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                int g = r / kg, k = r % kg;
                float* d = dwp + (long)r * ckk;
                for (int j = 0; j < ckk; j++)
                {
                    float v = sum[(long)g * kg * ckk + (long)j * kg + k];
                    d[j] = accumulate ? d[j] + v : v;
                }
            }
        });
    }

    float[] _wT = [];

    /// <summary>The weights as [G][C/G R S][K/G]: a row of output channels per tap, for the direct and lanes kernels.</summary>
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

    float[] _flipped = [];

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

    // ---- the GEMM family: pointwise, strided pointwise, im2col ------------------------------------------------

    /// <summary>y = conv(x, w): per image and group, one GEMM of the weights with the input (1x1 stride 1) or with
    /// its im2col matrix.</summary>
    void ForwardGemm(ConvSpec spec, float* xp, float* wp, float* yp)
    {
        int ohw = spec.OutH * spec.OutW, ckk = spec.CPerGroup * spec.R * spec.S, hw = spec.H * spec.W, kg = spec.KPerGroup;
        bool pointwise = ConvPlanner.IsPointwise(spec);
        ForImages(spec.N, 1, (worker, blocks) =>
        {
            var gemm = WorkerGemm(worker);
            float* col = pointwise ? null : ColScratch((long)ckk * ohw, out _);
            while (blocks.Take(out _, out int n0, out int n1))
            for (int n = n0; n < n1; n++)
                for (int g = 0; g < spec.Groups; g++)
                {
                    float* xg = xp + ((long)n * spec.C + g * spec.CPerGroup) * hw, b = xg;
                    if (col != null) { Im2Col(spec, xg, col); b = col; }
                    gemm.Run(new GemmSpec(false, false, kg, ohw, ckk), wp + (long)g * kg * ckk, b, yp + ((long)n * spec.K + g * kg) * ohw);
                }
        });
    }

    /// <summary>dx (+)= W^T dy per image and group: written straight into dx (1x1 stride 1) or through col2im.</summary>
    void BackwardInputGemm(ConvSpec spec, float* dyp, float* wp, float* dxp, bool accumulate)
    {
        int ohw = spec.OutH * spec.OutW, ckk = spec.CPerGroup * spec.R * spec.S, hw = spec.H * spec.W;
        bool pointwise = ConvPlanner.IsPointwise(spec);
        ForImages(spec.N, 1, (worker, blocks) =>
        {
            var gemm = WorkerGemm(worker);
            float* col = pointwise ? null : ColScratch((long)ckk * ohw, out _);
            while (blocks.Take(out _, out int n0, out int n1))
            for (int n = n0; n < n1; n++)
                for (int g = 0; g < spec.Groups; g++)
                {
                    float* dxg = dxp + ((long)n * spec.C + g * spec.CPerGroup) * hw;
                    float* wg = wp + (long)g * spec.KPerGroup * ckk, dyg = dyp + ((long)n * spec.K + g * spec.KPerGroup) * ohw;
                    if (pointwise)
                    {
                        gemm.Run(new GemmSpec(true, false, ckk, ohw, spec.KPerGroup, Beta: accumulate ? 1f : 0f), wg, dyg, dxg);
                        continue;
                    }
                    gemm.Run(new GemmSpec(true, false, ckk, ohw, spec.KPerGroup), wg, dyg, col);
                    if (!accumulate) new Span<float>(dxg, spec.CPerGroup * hw).Clear();
                    Col2ImAdd(spec, col, dxg);
                }
        });
    }

    /// <summary>dW (+)= dy col^T summed over images: each worker sums its images into its own partial; partials are
    /// added in worker order (deterministic).</summary>
    void WeightGradGemm(ConvSpec spec, float* xp, float* dyp, float* dwp, bool accumulate)
    {
        int ohw = spec.OutH * spec.OutW, ckk = spec.CPerGroup * spec.R * spec.S, hw = spec.H * spec.W;
        long wsize = spec.WeightSize;
        bool transposed = spec.KPerGroup >= 32, pointwise = ConvPlanner.IsPointwise(spec);
        var imageBlocks = new ImageBlocks(spec.N, 1);
        var partials = new float[imageBlocks.Count][];
        ForImages(imageBlocks, (worker, blocks) =>
        {
            var gemm = WorkerGemm(worker);
            float* col = pointwise ? null : ColScratch((long)ckk * ohw, out _);
            while (blocks.Take(out int block, out int n0, out int n1))
            {
            var part = partials[block] = BlockPartial(block, (int)wsize);
            float* pp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref part[0]);
            for (int n = n0; n < n1; n++)
                for (int g = 0; g < spec.Groups; g++)
                {
                    float* b = xp + ((long)n * spec.C + g * spec.CPerGroup) * hw;
                    if (col != null) { Im2Col(spec, b, col); b = col; }
                    float* dyg = dyp + ((long)n * spec.K + g * spec.KPerGroup) * ohw, pg = pp + (long)g * spec.KPerGroup * ckk;
                    // With at least 32 output channels, dW_g^T [ckk, K/G] += col dy_g^T packs the long col matrix as A
                    // (contiguous row panels) instead of transposing it into B panels; with fewer, the B panels
                    // of dy_g^T would be less than one 32-wide micro-kernel tile, so dW_g += dy_g col^T is faster.
                    if (transposed) gemm.Run(new GemmSpec(false, true, ckk, spec.KPerGroup, ohw, Beta: 1f), b, dyg, pg);
                    else gemm.Run(new GemmSpec(false, true, spec.KPerGroup, ckk, ohw, Beta: 1f), dyg, b, pg);
                }
            }
        });
        WriteWeightGradient(partials, spec, dwp, transposed, accumulate);
    }

    /// <summary>A 1x1 convolution with stride &gt; 1 reads only every stride-th pixel: the pointwise one on these pixels.</summary>
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
                        if (s.Stride == 1) AddRun(dst + lo, src + lo, hi - lo);
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

    /// <summary>dst[i] += src[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    /// <summary>dst += src over a short run (an image row): 8, then 4 at a time, at most 3 scalars (a 28-wide row has none).</summary>
    static void AddRun(float* dst, float* src, int n)
    {
        int i = 0;
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.Load(dst + i) + Vector256.Load(src + i), dst + i);
        if (i <= n - 4) { Vector128.Store(Vector128.Load(dst + i) + Vector128.Load(src + i), dst + i); i += 4; }
        for (; i < n; i++) dst[i] += src[i];
    }

    /// <summary>Copies a short run (one image row, 7 to 30 floats here) without a call into the runtime. From 8
    /// floats on, the last vector overlaps the one before instead of a scalar tail (src and dst never overlap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void CopyRun(float* src, float* dst, int n)
    {
        if (n < 8)
        {
            if (n >= 4) { Vector128.Store(Vector128.Load(src), dst); Vector128.Store(Vector128.Load(src + n - 4), dst + n - 4); return; }
            for (int j = 0; j < n; j++) dst[j] = src[j];
            return;
        }
        int i = 0;
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
        if (i < n) Vector256.Store(Vector256.Load(src + n - 8), dst + n - 8);
    }
}
