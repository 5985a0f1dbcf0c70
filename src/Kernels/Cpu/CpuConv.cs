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

    protected override void Conv2dCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y)
    {
        if (s.IsDepthwise) { DepthwiseForward(s, P(x), P(weight), P(y)); return; }
        var spec = s;
        float* xp = P(x), wp = P(weight), yp = P(y);
        int ohw = s.OutH * s.OutW, ckk = s.CPerGroup * s.R * s.S, hw = s.H * s.W;
        ForImages(s.N, (worker, n0, n1) =>
        {
            var gemm = WorkerGemm(worker);
            float* col = IsPointwise(spec) ? null : ColScratch((long)ckk * ohw, out _);
            for (int n = n0; n < n1; n++)
                for (int g = 0; g < spec.Groups; g++)
                {
                    float* xg = xp + ((long)n * spec.C + g * spec.CPerGroup) * hw;
                    float* b = xg;
                    if (col != null) { Im2Col(spec, xg, col); b = col; }
                    gemm.Run(new GemmSpec(false, false, spec.KPerGroup, ohw, ckk), wp + (long)g * spec.KPerGroup * ckk, b,
                        yp + ((long)n * spec.K + g * spec.KPerGroup) * ohw);
                }
        });
    }

    protected override void Conv2dBackwardInputCore(in ConvSpec s, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate)
    {
        if (s.IsDepthwise) { DepthwiseBackwardInput(s, P(dy), P(weight), P(dx), accumulate); return; }
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
        if (s.IsDepthwise) { DepthwiseBackwardWeight(s, P(x), P(dy), P(dw), accumulate); return; }
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
            var part = partials[worker] = GC.AllocateArray<float>((int)wsize, pinned: true);
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
        // Sum the partials (in worker order) and transpose each group's [ckk, K/G] block back to [K/G, ckk].
        var sum = partials[0];
        for (int i = 1; i < partials.Length; i++)
            fixed (float* a = sum, b = partials[i]) BinaryRun(BinaryOp.Add, a, b, a, (int)wsize);
        int kg = s.KPerGroup;
        for (int g = 0; g < s.Groups; g++)
            for (int k = 0; k < kg; k++)
                for (int j = 0; j < ckk; j++)
                {
                    float v = transposed ? sum[(long)g * kg * ckk + (long)j * kg + k] : sum[(long)g * kg * ckk + (long)k * ckk + j];
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
                    ScaleShift(xp + o, yp + o, a, b, spec.Spatial);
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

    static void ScaleShift(float* x, float* y, float a, float b, int n)
    {
        int i = 0;
        var va = Vector256.Create(a); var vb = Vector256.Create(b);
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(x + i), va, vb), y + i);
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i], a, b);
    }

    protected override void BatchNormBackwardCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool training, bool accumulate)
    {
        var spec = s;
        float* xp = P(x), gp = P(dy), gam = P(gamma), mp = P(saveMean), ip = P(saveInvStd), dxp = P(dx), dgp = P(dGamma), dbp = P(dBeta);
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
                    var (a, b) = GradSums(gp + o, xp + o, spec.Spatial, mean);
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
                    BatchNormGradRow(gp + o, xp + o, dxp + o, spec.Spatial, a1, a2, a3, accumulate);
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
