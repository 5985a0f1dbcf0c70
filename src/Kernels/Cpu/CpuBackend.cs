using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>The default backend: C# SIMD (Vector512 where the processor has it, Vector256 otherwise, scalar
/// tails), multi-threaded over a fixed number of threads with static partitioning.</summary>
public unsafe partial class CpuBackend : BackendBase
{
    readonly CpuParallel _parallel;
    readonly CpuGemm _gemm;
    readonly bool _use512;
    const long ElementwiseChunk = 1 << 17;

    /// <param name="threads">Worker threads; 0 means every core.</param>
    /// <param name="allowVector512">False forces the Vector256 kernels (used by tests to cover both paths).</param>
    public CpuBackend(int threads = 0, bool allowVector512 = true) : this(threads, allowVector512, forceVector512: false) { }

    CpuBackend(int threads, bool allowVector512, bool forceVector512)
    {
        if (threads < 0) throw new ArgumentOutOfRangeException(nameof(threads), threads, "threads must be >= 0 (0 = all cores)");
        _parallel = new CpuParallel(threads == 0 ? Environment.ProcessorCount : threads);
        _use512 = forceVector512 || (allowVector512 && Vector512.IsHardwareAccelerated);
        _gemm = new CpuGemm(_parallel, allowVector512, forceVector512);
    }

    /// <summary>A backend on a chosen SIMD width whatever the host: 512 runs the Vector512 kernels even without
    /// AVX-512 (.NET then emulates the vectors in software: correct but slow), so checks cover both widths anywhere.</summary>
    public static CpuBackend WithSimdWidth(int threads, int bits) => bits switch
    {
        512 => new CpuBackend(threads, allowVector512: true, forceVector512: true),
        256 => new CpuBackend(threads, allowVector512: false, forceVector512: false),
        _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "SIMD width must be 256 or 512 bits"),
    };

    /// <summary>The vector width of this backend's kernels in bits (512 or 256).</summary>
    public int SimdBits => _use512 ? 512 : 256;

    /// <summary>Subnormal handling on every thread that runs this backend's ops (default: flushed, FTZ + DAZ).</summary>
    public DenormalMode Denormals { get => _parallel.Denormals; set => _parallel.Denormals = value; }

    internal override void PrepareThread() => FloatControl.Use(_parallel.Denormals);

    /// <summary>What <see cref="Denormals"/> means on this host, for reports.</summary>
    public string DenormalDescription => !FloatControl.Supported ? "IEEE subnormals (this host's control register is not settable)"
        : Denormals == DenormalMode.Flush ? "subnormals flushed (MXCSR FTZ+DAZ)" : "IEEE subnormals";

    public override string Name => "cpu";
    public override int Threads => _parallel.Threads;
    public string SimdWidth => _use512 ? (Vector512.IsHardwareAccelerated ? "Vector512" : "Vector512 (software)") : Vector256.IsHardwareAccelerated ? "Vector256" : "scalar";
    public override string DeviceDescription =>
        $"{CpuInfo.ModelName}, {_parallel.Threads} thread(s), {SimdWidth}, GEMM {_gemm.Kernel}, {DenormalDescription}";

    public override DeviceBuffer<float> Allocate(int length) => new CpuBuffer<float>(this, length);
    public override DeviceBuffer<int> AllocateInt(int length) => new CpuBuffer<int>(this, length);
    public override void Synchronize() { }

    static float* P(DeviceBuffer<float> b) => ((CpuBuffer<float>)b).Pointer;
    static int* P(DeviceBuffer<int> b) => ((CpuBuffer<int>)b).Pointer;

    protected override ReadOnlySpan<int> ReadInts(DeviceBuffer<int> buffer, int count) => ((CpuBuffer<int>)buffer).Array.AsSpan(0, count);

    protected override void FillCore(DeviceBuffer<float> x, int offset, int count, float value) => ((CpuBuffer<float>)x).Span.Slice(offset, count).Fill(value);
    protected override void FillIntCore(DeviceBuffer<int> x, int offset, int count, int value) => ((CpuBuffer<int>)x).Span.Slice(offset, count).Fill(value);

    protected override void CopyCore(DeviceBuffer<float> source, int sourceOffset, DeviceBuffer<float> destination, int destinationOffset, int count) =>
        ((CpuBuffer<float>)source).Span.Slice(sourceOffset, count).CopyTo(((CpuBuffer<float>)destination).Span.Slice(destinationOffset, count));

    protected override void GemmCore(in GemmSpec spec, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c) => _gemm.Run(spec, P(a), P(b), P(c));

    protected override void TransposeCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int batch, int rows, int cols)
    {
        float* src = P(x), dst = P(y);
        const int T = 32;
        int rowBlocks = (rows + T - 1) / T;
        _parallel.For(batch * rowBlocks, (long)T * cols, (s, e) =>
        {
            for (int item = s; item < e; item++)
            {
                int bIdx = item / rowBlocks, r0 = item % rowBlocks * T, r1 = Math.Min(rows, r0 + T);
                float* xs = src + (long)bIdx * rows * cols, ys = dst + (long)bIdx * rows * cols;
                for (int c0 = 0; c0 < cols; c0 += T)
                {
                    int c1 = Math.Min(cols, c0 + T);
                    for (int r = r0; r < r1; r++)
                        for (int c = c0; c < c1; c++)
                            ys[(long)c * rows + r] = xs[(long)r * cols + c];
                }
            }
        });
    }

    // ---- element-wise ---------------------------------------------------------------------------------------

    protected override void UnaryCore(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float scalar)
    {
        float* xp = P(x), yp = P(y);
        _parallel.For(count, 1, (s, e) =>
        {
            if (_use512) UnaryRange<V512>(op, xp + s, yp + s, e - s, scalar);
            else UnaryRange<V256>(op, xp + s, yp + s, e - s, scalar);
        }, ElementwiseChunk);
    }

    static void UnaryRange<TV>(UnaryOp op, float* x, float* y, int n, float s) where TV : struct, ISimd<TV>
    {
        switch (op)
        {
            case UnaryOp.Copy: Map<TV, CopyOp>(x, y, n, default); break;
            case UnaryOp.Relu: Map<TV, ReluOp>(x, y, n, default); break;
            case UnaryOp.Relu6: Map<TV, Relu6Op>(x, y, n, default); break;
            case UnaryOp.Gelu: Map<TV, GeluOp>(x, y, n, default); break;
            case UnaryOp.Scale: Map<TV, ScaleOp>(x, y, n, new ScaleOp(s)); break;
            case UnaryOp.AddScalar: Map<TV, AddScalarOp>(x, y, n, new AddScalarOp(s)); break;
            case UnaryOp.Neg: Map<TV, ScaleOp>(x, y, n, new ScaleOp(-1f)); break;
            case UnaryOp.Square: Map<TV, SquareOp>(x, y, n, default); break;
            case UnaryOp.Exp: Map<TV, ExpOp>(x, y, n, default); break;
            case UnaryOp.Sqrt: Map<TV, SqrtOp>(x, y, n, default); break;
            case UnaryOp.Tanh: Map<TV, TanhOp>(x, y, n, default); break;
            case UnaryOp.Sigmoid: Map<TV, SigmoidOp>(x, y, n, default); break;
            default: for (int i = 0; i < n; i++) y[i] = ScalarMath.Unary(op, x[i], s); break;   // Log: no vector form
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Map<TV, TMap>(float* x, float* y, int n, TMap map) where TV : struct, ISimd<TV> where TMap : struct, IVectorUnaryOp
    {
        int i = 0, w = TV.Count;
        for (; i <= n - w; i += w) TV.Store(map.Vec(TV.Load(x + i)), y + i);
        for (; i < n; i++) y[i] = map.Scalar(x[i]);
    }

    protected override void UnaryBackwardCore(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int count, float scalar, bool accumulate)
    {
        float* xp = P(x), gp = P(dy), dp = P(dx);
        _parallel.For(count, 1, (s, e) =>
        {
            if (_use512) GradRange<V512>(op, xp + s, gp + s, dp + s, e - s, scalar, accumulate);
            else GradRange<V256>(op, xp + s, gp + s, dp + s, e - s, scalar, accumulate);
        }, ElementwiseChunk);
    }

    static void GradRange<TV>(UnaryOp op, float* x, float* dy, float* dx, int n, float s, bool acc) where TV : struct, ISimd<TV>
    {
        switch (op)
        {
            case UnaryOp.Copy: case UnaryOp.AddScalar: GradMap<TV, ScaleOp>(x, dy, dx, n, new ScaleOp(1f), acc); break;
            case UnaryOp.Scale: GradMap<TV, ScaleOp>(x, dy, dx, n, new ScaleOp(s), acc); break;
            case UnaryOp.Neg: GradMap<TV, ScaleOp>(x, dy, dx, n, new ScaleOp(-1f), acc); break;
            case UnaryOp.Relu: GradMap<TV, ReluOp>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Relu6: GradMap<TV, Relu6Op>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Gelu: GradMap<TV, GeluOp>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Square: GradMap<TV, SquareOp>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Exp: GradMap<TV, ExpOp>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Sqrt: GradMap<TV, SqrtOp>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Tanh: GradMap<TV, TanhOp>(x, dy, dx, n, default, acc); break;
            case UnaryOp.Sigmoid: GradMap<TV, SigmoidOp>(x, dy, dx, n, default, acc); break;
            default:   // Log: no vector form
                for (int i = 0; i < n; i++)
                {
                    float g = dy[i] * ScalarMath.UnaryGrad(op, x[i], s);
                    dx[i] = acc ? dx[i] + g : g;
                }
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GradMap<TV, TMap>(float* x, float* dy, float* dx, int n, TMap map, bool acc) where TV : struct, ISimd<TV> where TMap : struct, IVectorUnaryOp
    {
        int i = 0, w = TV.Count;
        if (acc)
        {
            for (; i <= n - w; i += w) TV.Store(TV.Fma(TV.Load(dy + i), map.VecGrad(TV.Load(x + i)), TV.Load(dx + i)), dx + i);
            for (; i < n; i++) dx[i] += dy[i] * map.ScalarGrad(x[i]);
        }
        else
        {
            for (; i <= n - w; i += w) TV.Store(TV.Mul(TV.Load(dy + i), map.VecGrad(TV.Load(x + i))), dx + i);
            for (; i < n; i++) dx[i] = dy[i] * map.ScalarGrad(x[i]);
        }
    }

    protected override void AddReluBackwardCore(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> da, DeviceBuffer<float> db, int count,
        bool accumulateA, bool accumulateB)
    {
        float* yp = P(y), gp = P(dy), ap = P(da), bp = P(db);
        _parallel.For(count, 1, (s, e) =>
        {
            if (_use512) AddReluGrad<V512>(yp + s, gp + s, ap + s, bp + s, e - s, accumulateA, accumulateB);
            else AddReluGrad<V256>(yp + s, gp + s, ap + s, bp + s, e - s, accumulateA, accumulateB);
        }, ElementwiseChunk);
    }

    /// <summary>g = dy [y &gt; 0] once, written or added into both gradients.</summary>
    static void AddReluGrad<TV>(float* y, float* dy, float* da, float* db, int n, bool accA, bool accB) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        for (; i <= n - w; i += w)
        {
            var g = TV.SelectGreater(TV.Load(y + i), default, TV.Load(dy + i), default);
            TV.Store(accA ? TV.Add(TV.Load(da + i), g) : g, da + i);
            TV.Store(accB ? TV.Add(TV.Load(db + i), g) : g, db + i);
        }
        for (; i < n; i++)
        {
            float g = y[i] > 0f ? dy[i] : 0f;
            da[i] = accA ? da[i] + g : g;
            db[i] = accB ? db[i] + g : g;
        }
    }

    protected override void BinaryCore(BinaryOp op, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> y, int count, int bLength, int bInner)
    {
        float* ap = P(a), bp = P(b), yp = P(y);
        if (bInner == 1)
        {
            // b repeats every bLength elements (same shape when bLength == count): vectorise along b.
            int rows = count / bLength;
            if (rows == 1)
                _parallel.For(count, 1, (s, e) => BinaryRun(op, ap + s, bp + s, yp + s, e - s), ElementwiseChunk);
            else
                _parallel.For(rows, bLength, (s, e) => { for (int r = s; r < e; r++) BinaryRun(op, ap + (long)r * bLength, bp, yp + (long)r * bLength, bLength); }, ElementwiseChunk);
        }
        else
        {
            // b[j] is constant over runs of bInner elements (per-channel bias of NCHW).
            int runs = count / bInner;
            _parallel.For(runs, bInner, (s, e) =>
            {
                for (int r = s; r < e; r++) BinaryScalarRun(op, ap + (long)r * bInner, bp[r % bLength], yp + (long)r * bInner, bInner);
            }, ElementwiseChunk);
        }
    }

    void BinaryRun(BinaryOp op, float* a, float* b, float* y, int n)
    {
        if (_use512) BinaryRun<V512>(op, a, b, y, n); else BinaryRun<V256>(op, a, b, y, n);
    }

    static void BinaryRun<TV>(BinaryOp op, float* a, float* b, float* y, int n) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        switch (op)
        {
            case BinaryOp.Add: for (; i <= n - w; i += w) TV.Store(TV.Add(TV.Load(a + i), TV.Load(b + i)), y + i); break;
            case BinaryOp.Sub: for (; i <= n - w; i += w) TV.Store(TV.Sub(TV.Load(a + i), TV.Load(b + i)), y + i); break;
            case BinaryOp.Mul: for (; i <= n - w; i += w) TV.Store(TV.Mul(TV.Load(a + i), TV.Load(b + i)), y + i); break;
            case BinaryOp.Div: for (; i <= n - w; i += w) TV.Store(TV.Div(TV.Load(a + i), TV.Load(b + i)), y + i); break;
            case BinaryOp.Max: for (; i <= n - w; i += w) TV.Store(TV.Max(TV.Load(a + i), TV.Load(b + i)), y + i); break;
            case BinaryOp.Min: for (; i <= n - w; i += w) TV.Store(TV.Min(TV.Load(a + i), TV.Load(b + i)), y + i); break;
            case BinaryOp.AddRelu: for (; i <= n - w; i += w) TV.Store(TV.Max(TV.Add(TV.Load(a + i), TV.Load(b + i)), default), y + i); break;
        }
        for (; i < n; i++) y[i] = ScalarMath.Binary(op, a[i], b[i]);
    }

    void BinaryScalarRun(BinaryOp op, float* a, float b, float* y, int n)
    {
        if (_use512) BinaryScalarRun<V512>(op, a, b, y, n); else BinaryScalarRun<V256>(op, a, b, y, n);
    }

    static void BinaryScalarRun<TV>(BinaryOp op, float* a, float b, float* y, int n) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        var vb = TV.Splat(b);
        switch (op)
        {
            case BinaryOp.Add: for (; i <= n - w; i += w) TV.Store(TV.Add(TV.Load(a + i), vb), y + i); break;
            case BinaryOp.Sub: for (; i <= n - w; i += w) TV.Store(TV.Sub(TV.Load(a + i), vb), y + i); break;
            case BinaryOp.Mul: for (; i <= n - w; i += w) TV.Store(TV.Mul(TV.Load(a + i), vb), y + i); break;
            case BinaryOp.Div: for (; i <= n - w; i += w) TV.Store(TV.Div(TV.Load(a + i), vb), y + i); break;
            case BinaryOp.Max: for (; i <= n - w; i += w) TV.Store(TV.Max(TV.Load(a + i), vb), y + i); break;
            case BinaryOp.Min: for (; i <= n - w; i += w) TV.Store(TV.Min(TV.Load(a + i), vb), y + i); break;
            case BinaryOp.AddRelu: for (; i <= n - w; i += w) TV.Store(TV.Max(TV.Add(TV.Load(a + i), vb), default), y + i); break;
        }
        for (; i < n; i++) y[i] = ScalarMath.Binary(op, a[i], b);
    }

    protected override void AxpbyCore(float alpha, DeviceBuffer<float> x, float beta, DeviceBuffer<float> y, int count)
    {
        float* xp = P(x), yp = P(y);
        _parallel.For(count, 1, (s, e) =>
        {
            if (_use512) Axpby<V512>(alpha, xp + s, beta, yp + s, e - s); else Axpby<V256>(alpha, xp + s, beta, yp + s, e - s);
        }, ElementwiseChunk);
    }

    static void Axpby<TV>(float alpha, float* x, float beta, float* y, int n) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        var va = TV.Splat(alpha); var vb = TV.Splat(beta);
        if (beta == 0f)
        {
            for (; i <= n - w; i += w) TV.Store(TV.Mul(va, TV.Load(x + i)), y + i);
            for (; i < n; i++) y[i] = alpha * x[i];
        }
        else
        {
            for (; i <= n - w; i += w) TV.Store(TV.Fma(va, TV.Load(x + i), TV.Mul(vb, TV.Load(y + i))), y + i);
            for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(alpha, x[i], beta * y[i]);
        }
    }

    // ---- reductions -----------------------------------------------------------------------------------------

    protected override void ReduceCore(ReduceOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int outer, int axis, int inner, DeviceBuffer<int>? argIndex)
    {
        float* xp = P(x), yp = P(y);
        int* ip = argIndex == null ? null : P(argIndex);
        if (inner == 1)
        {
            _parallel.For(outer, axis, (s, e) =>
            {
                for (int o = s; o < e; o++)
                {
                    float* row = xp + (long)o * axis;
                    if (ip != null) { int best = 0; for (int a = 1; a < axis; a++) if (row[a] > row[best]) best = a; ip[o] = best; yp[o] = row[best]; }
                    else if (op == ReduceOp.Max) yp[o] = _use512 ? RowMax<V512>(row, axis) : RowMax<V256>(row, axis);
                    else
                    {
                        float sum = _use512 ? RowSum<V512>(row, axis) : RowSum<V256>(row, axis);
                        yp[o] = op == ReduceOp.Mean ? sum / axis : sum;
                    }
                }
            });
            return;
        }
        // Strided: accumulate whole inner rows, vectorised along inner; work items are (outer, inner chunk).
        const int Chunk = 1024;
        int chunks = (inner + Chunk - 1) / Chunk;
        _parallel.For(outer * chunks, (long)axis * Math.Min(inner, Chunk), (s, e) =>
        {
            for (int item = s; item < e; item++)
            {
                int o = item / chunks, i0 = item % chunks * Chunk, n = Math.Min(Chunk, inner - i0);
                float* src = xp + (long)o * axis * inner + i0, dst = yp + (long)o * inner + i0;
                int* idx = ip == null ? null : ip + (long)o * inner + i0;
                for (int i = 0; i < n; i++) { dst[i] = src[i]; if (idx != null) idx[i] = 0; }
                for (int a = 1; a < axis; a++)
                {
                    float* rowA = src + (long)a * inner;
                    if (idx != null) { for (int i = 0; i < n; i++) if (rowA[i] > dst[i]) { dst[i] = rowA[i]; idx[i] = a; } }
                    else BinaryRun(op == ReduceOp.Max ? BinaryOp.Max : BinaryOp.Add, dst, rowA, dst, n);
                }
                if (op == ReduceOp.Mean) for (int i = 0; i < n; i++) dst[i] /= axis;
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float RowSum<TV>(float* x, int n) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        var acc0 = TV.Splat(0f); var acc1 = TV.Splat(0f);
        for (; i <= n - 2 * w; i += 2 * w) { acc0 = TV.Add(acc0, TV.Load(x + i)); acc1 = TV.Add(acc1, TV.Load(x + i + w)); }
        for (; i <= n - w; i += w) acc0 = TV.Add(acc0, TV.Load(x + i));
        float s = TV.Sum(TV.Add(acc0, acc1));
        for (; i < n; i++) s += x[i];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float RowMax<TV>(float* x, int n) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        float m = float.NegativeInfinity;
        if (n >= w)
        {
            // Two accumulators hide the max latency; the row is usually in L1 and this pass is otherwise latency-bound.
            var acc0 = TV.Load(x); var acc1 = acc0;
            for (i = w; i <= n - 2 * w; i += 2 * w) { acc0 = TV.Max(acc0, TV.Load(x + i)); acc1 = TV.Max(acc1, TV.Load(x + i + w)); }
            for (; i <= n - w; i += w) acc0 = TV.Max(acc0, TV.Load(x + i));
            m = TV.MaxAcross(TV.Max(acc0, acc1));
        }
        for (; i < n; i++) m = MathF.Max(m, x[i]);
        return m;
    }

    // ---- initialisers and optimisers --------------------------------------------------------------------------

    protected override void InitUniformCore(DeviceBuffer<float> x, int count, ulong seed, float low, float high)
    {
        float* xp = P(x);
        _parallel.For(count, 8, (s, e) => { for (int i = s; i < e; i++) xp[i] = low + (high - low) * ScalarMath.Uniform01(seed, (ulong)i); });
    }

    protected override void InitNormalCore(DeviceBuffer<float> x, int count, ulong seed, float mean, float std)
    {
        float* xp = P(x);
        _parallel.For(count, 40, (s, e) => { for (int i = s; i < e; i++) xp[i] = mean + std * ScalarMath.Normal(seed, (ulong)i); });
    }

    protected override void SgdStepCore(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> velocity, int count, in SgdConfig c)
    {
        float* p = P(parameter), g = P(gradient), v = P(velocity);
        var cfg = c;
        _parallel.For(count, 4, (s, e) =>
        {
            if (_use512) Sgd<V512>(p + s, g + s, v + s, e - s, cfg); else Sgd<V256>(p + s, g + s, v + s, e - s, cfg);
        }, ElementwiseChunk);
    }

    static void Sgd<TV>(float* p, float* g, float* v, int n, SgdConfig c) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        var lr = TV.Splat(c.LearningRate); var mu = TV.Splat(c.Momentum); var wd = TV.Splat(c.WeightDecay);
        for (; i <= n - w; i += w)
        {
            var pv = TV.Load(p + i);
            var gv = TV.Fma(wd, pv, TV.Load(g + i));
            var vv = TV.Fma(mu, TV.Load(v + i), gv);
            TV.Store(vv, v + i);
            var step = c.Nesterov ? TV.Fma(mu, vv, gv) : vv;
            TV.Store(TV.Sub(pv, TV.Mul(lr, step)), p + i);
        }
        for (; i < n; i++)
        {
            float gv = MathF.FusedMultiplyAdd(c.WeightDecay, p[i], g[i]);
            float vv = MathF.FusedMultiplyAdd(c.Momentum, v[i], gv);
            v[i] = vv;
            float step = c.Nesterov ? MathF.FusedMultiplyAdd(c.Momentum, vv, gv) : vv;
            p[i] -= c.LearningRate * step;
        }
    }

    protected override void AdamWStepCore(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, in AdamWConfig c, int step)
    {
        float* p = P(parameter), g = P(gradient), mp = P(m), vp = P(v);
        var cfg = c;
        _parallel.For(count, 8, (s, e) =>
        {
            if (_use512) AdamW<V512>(p + s, g + s, mp + s, vp + s, e - s, cfg, step); else AdamW<V256>(p + s, g + s, mp + s, vp + s, e - s, cfg, step);
        }, ElementwiseChunk);
    }

    static void AdamW<TV>(float* p, float* g, float* m, float* v, int n, AdamWConfig c, int step) where TV : struct, ISimd<TV>
    {
        float bc1 = 1f - MathF.Pow(c.Beta1, step), bc2 = 1f - MathF.Pow(c.Beta2, step);
        float decay = 1f - c.LearningRate * c.WeightDecay, stepSize = c.LearningRate / bc1, invSqrtBc2 = 1f / MathF.Sqrt(bc2);
        int i = 0, w = TV.Count;
        var b1 = TV.Splat(c.Beta1); var ob1 = TV.Splat(1f - c.Beta1); var b2 = TV.Splat(c.Beta2); var ob2 = TV.Splat(1f - c.Beta2);
        var vDecay = TV.Splat(decay); var vStep = TV.Splat(stepSize); var vInv = TV.Splat(invSqrtBc2); var vEps = TV.Splat(c.Epsilon);
        for (; i <= n - w; i += w)
        {
            var gv = TV.Load(g + i);
            var mv = TV.Fma(b1, TV.Load(m + i), TV.Mul(ob1, gv));
            var vv = TV.Fma(b2, TV.Load(v + i), TV.Mul(ob2, TV.Mul(gv, gv)));
            TV.Store(mv, m + i); TV.Store(vv, v + i);
            var denom = TV.Add(TV.Mul(TV.Sqrt(vv), vInv), vEps);
            TV.Store(TV.Sub(TV.Mul(vDecay, TV.Load(p + i)), TV.Div(TV.Mul(vStep, mv), denom)), p + i);
        }
        for (; i < n; i++)
        {
            float gv = g[i];
            float mv = MathF.FusedMultiplyAdd(c.Beta1, m[i], (1f - c.Beta1) * gv);
            float vv = MathF.FusedMultiplyAdd(c.Beta2, v[i], (1f - c.Beta2) * (gv * gv));
            m[i] = mv; v[i] = vv;
            p[i] = decay * p[i] - stepSize * mv / (MathF.Sqrt(vv) * invSqrtBc2 + c.Epsilon);
        }
    }
}
