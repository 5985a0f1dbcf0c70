using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;
using LsKd.Kernels.Reference;

namespace LsKd.Kernels.Checks;

/// <summary>One comparison of a backend op against its float64 reference.</summary>
public sealed record CheckResult(string Op, string Case, bool Passed, double WorstError, long WorstIndex, double Got, double Expected,
    double Atol, double Rtol, int Mismatches, long Count)
{
    /// <summary>The exception's message when the op threw instead of returning a result.</summary>
    public string? Error { get; init; }

    public override string ToString() => Error != null ? $"{Op}: FAIL, {Case}" :
        $"{Op} [{Case}]: {(Passed ? "ok" : "FAIL")} worst |err| {WorstError:G3} at {WorstIndex} (got {Got:G7}, ref {Expected:G7}), " +
        $"tol {Atol:G2} + {Rtol:G2}|ref|, {Mismatches}/{Count} outside";
}

/// <summary>
/// Runs every op of a backend on seeded random inputs and compares with <see cref="ReferenceOps"/> using
/// |got - ref| &lt;= atol + rtol |ref| (llm.c style; non-finite references are skipped). The same cases back the
/// unit tests and `lskd check --device ...`. <paramref name="small"/> keeps shapes tiny for ILGPU's slow CPU emulator.
/// </summary>
public sealed partial class KernelCheck(IBackend backend, bool small = false)
{
    readonly List<CheckResult> _results = [];

    /// <summary>Every op the check knows, in the order it runs them: the one place an op is registered.</summary>
    static readonly (string Op, Action<KernelCheck> Check)[] s_checks =
    [
        ("gemm", c => c.Gemm()),
        ("unary", c => c.Unary()),
        ("unary-backward", c => c.UnaryBackward()),
        ("binary", c => c.Binary()),
        ("axpby", c => c.Axpby()),
        ("reduce", c => c.Reduce()),
        ("transpose", c => c.Transpose()),
        ("copy-fill", c => c.CopyFill()),
        ("init", c => c.Init()),
        ("sgd", c => c.Sgd()),
        ("adamw", c => c.AdamW()),
        ("softmax", c => c.Softmax()),
        ("softmax-backward", c => c.SoftmaxBackward()),
        ("label-smoothing-ce", c => c.LabelSmoothing()),
        ("kd-loss", c => c.Kd()),
        ("entropy", c => c.Entropy()),
        ("topk", c => c.TopK()),
        ("confusion", c => c.Confusion()),
        ("conv2d", c => c.Conv()),
        ("batchnorm", c => c.BatchNorm()),
        ("pool", c => c.Pool()),
        ("dropout", c => c.Dropout()),
        ("token-losses", c => c.TokenLosses()),
        ("embedding", c => c.EmbeddingCheck()),
        ("layernorm", c => c.LayerNormCheck()),
        ("attention", c => c.AttentionCheck()),
        ("centroids", c => c.Centroids()),
        ("distances", c => c.Distances()),
        ("qr", c => c.Qr()),
        ("covariance", c => c.Covariance()),
        ("eigen", c => c.Eigen()),
        ("pca", c => c.PcaCheck()),
    ];

    public static IReadOnlyList<string> Ops { get; } = s_checks.Select(c => c.Op).ToArray();

    public IReadOnlyList<CheckResult> Run(string op)
    {
        var check = s_checks.FirstOrDefault(c => c.Op == op).Check
            ?? throw new ArgumentException($"unknown op '{op}'; valid ops: {string.Join(", ", Ops)}", nameof(op));
        _results.Clear();
        try { check(this); }
        catch (Exception e) { Threw(op, "", e); }
        return [.. _results];
    }

    /// <summary>A kernel that throws (a PTX the driver rejects, a launch failure) is a failed row with its message, and
    /// the other ops and variants still run: one bad kernel must not hide every other result.</summary>
    void Threw(string op, string where, Exception e)
    {
        var inner = e is AggregateException { InnerExceptions.Count: 1 } or System.Reflection.TargetInvocationException ? e.InnerException ?? e : e;
        string message = inner.Message.ReplaceLineEndings(" ");
        _results.Add(new CheckResult(op, $"{where}threw {inner.GetType().Name}: {message}", false, double.NaN, -1, double.NaN, double.NaN, 0, 0, 1, 0)
            { Error = message });
    }

    public IReadOnlyList<CheckResult> RunAll() => Ops.SelectMany(Run).ToList();

    // ---- helpers --------------------------------------------------------------------------------------------

    static float[] Random(int n, int seed, float scale = 1f, float shift = 0f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = shift + scale * (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>Logits; "confident" multiplies a few logits per row by 20 (Liger-Kernel practice).</summary>
    static float[] Logits(int rows, int cols, int seed, bool confident, float magnitude = 3f)
    {
        var x = Random(rows * cols, seed, magnitude);
        if (confident)
        {
            var rng = new Random(seed + 1);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < Math.Min(3, cols); j++) x[r * cols + rng.Next(cols)] *= 20f;
        }
        return x;
    }

    static int[] Labels(int n, int classes, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(classes)).ToArray();
    }

    DeviceBuffer<float> Up(float[] x) => Up(backend, x);
    static DeviceBuffer<float> Up(IBackend b, float[] x) { var d = b.Allocate(x.Length); d.Upload(x); return d; }
    DeviceBuffer<int> Up(int[] x) { var b = backend.AllocateInt(x.Length); b.Upload(x); return b; }

    void Compare(string op, string name, ReadOnlySpan<float> got, ReadOnlySpan<double> expected, double atol, double rtol)
    {
        double worst = -1, worstRatio = -1, g = 0, e = 0;
        long worstIdx = -1;
        int bad = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (!double.IsFinite(expected[i])) continue;
            double err = Math.Abs(got[i] - expected[i]);
            double tol = atol + rtol * Math.Abs(expected[i]);
            bool ok = err <= tol;   // NaN in got fails here
            if (!ok) bad++;
            double ratio = double.IsNaN(err) ? double.PositiveInfinity : err / tol;
            if (ratio > worstRatio) { worstRatio = ratio; worst = err; worstIdx = i; g = got[i]; e = expected[i]; }
        }
        _results.Add(new CheckResult(op, name + _variant, bad == 0, Math.Max(worst, 0), worstIdx, g, e, atol, rtol, bad, expected.Length));
    }

    static double[] D(ReadOnlySpan<float> x) { var d = new double[x.Length]; for (int i = 0; i < x.Length; i++) d[i] = x[i]; return d; }
    static double[] D(ReadOnlySpan<int> x) { var d = new double[x.Length]; for (int i = 0; i < x.Length; i++) d[i] = x[i]; return d; }

    // ---- cases ----------------------------------------------------------------------------------------------

    void Gemm() => ForEachVariant("gemm", GemmVariants, GemmCases);

    void GemmCases()
    {
        var shapes = small
            ? new[] { (1, 1, 1), (17, 23, 19), (5, 33, 2) }
            : new[] { (1, 1, 1), (17, 23, 19), (64, 64, 64), (130, 67, 257), (7, 300, 513), (97, 31, 1) };
        int seed = 10;
        foreach (var (m, n, k) in shapes)
            foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true), (true, true) })
            {
                int batch = m * n * k < 5000 ? 3 : 1;
                float beta = (seed % 2 == 0) ? 0f : 0.5f;
                var spec = new GemmSpec(ta, tb, m, n, k, Alpha: 1.5f, Beta: beta, BatchCount: batch,
                    StrideA: m * k, StrideB: k * n, StrideC: m * n, OffsetA: 0, OffsetB: 0, OffsetC: 0);
                var a = Random(m * k * batch, seed++); var b = Random(k * n * batch, seed++); var c = Random(m * n * batch, seed++);
                using var da = Up(a); using var db = Up(b); using var dc = Up(c);
                backend.Gemm(spec, da, db, dc);
                Compare("gemm", $"{(ta ? "T" : "N")}{(tb ? "T" : "N")} {m}x{n}x{k} b{batch} beta={beta}", dc.ToArray(), ReferenceOps.Gemm(spec, T(a), T(b), c), 2e-6 * k + 1e-5, 1e-5);
            }
        // Attention heads as products on strided views of one fused QKV buffer [B, L, 3 H d]: S = Q K^T per (b, h) into a
        // packed [B, H, L, L], then O = P V per (b, h) into the heads' columns of [B, L, H d]; and a transposed A.
        {
            int bsz = 2, heads = 3, len = small ? 5 : 37, d = small ? 4 : 16, md = heads * d, row = 3 * md;
            var qkv = Random(bsz * len * row, 80);
            var scores = new GemmSpec(false, true, len, len, d, Alpha: 0.25f, BatchCount: bsz, StrideA: (long)len * row, StrideB: (long)len * row, StrideC: (long)heads * len * len,
                OffsetB: md, Lda: row, Ldb: row, Heads: heads, HeadStrideA: d, HeadStrideB: d, HeadStrideC: (long)len * len);
            var sInit = Random(bsz * heads * len * len, 81);
            using var dqkv = Up(qkv); using var ds = Up(sInit);
            backend.Gemm(scores, dqkv, dqkv, ds);
            Compare("gemm", $"heads: Q K^T on strided views {scores}", ds.ToArray(), ReferenceOps.Gemm(scores, T(qkv), T(qkv), sInit), 2e-6 * d + 1e-5, 1e-5);
            var p = Random(bsz * heads * len * len, 82);
            var weighted = new GemmSpec(false, false, len, d, len, Beta: 0.5f, BatchCount: bsz, StrideA: (long)heads * len * len, StrideB: (long)len * row, StrideC: (long)len * md,
                OffsetB: 2 * md, Ldb: row, Ldc: md, Heads: heads, HeadStrideA: (long)len * len, HeadStrideB: d, HeadStrideC: d);
            var oInit = Random(bsz * len * md, 83);
            using var dp = Up(p); using var dout = Up(oInit);
            backend.Gemm(weighted, dp, dqkv, dout);
            Compare("gemm", $"heads: P V into strided O {weighted}", dout.ToArray(), ReferenceOps.Gemm(weighted, T(p), T(qkv), oInit), 2e-6 * len + 1e-5, 1e-5);
            var transposed = new GemmSpec(true, false, d, d, len, BatchCount: bsz, StrideA: (long)len * row, StrideB: (long)len * row, StrideC: (long)heads * d * d,
                OffsetB: md, Lda: row, Ldb: row, Heads: heads, HeadStrideA: d, HeadStrideB: d, HeadStrideC: (long)d * d);
            var cInit = new float[bsz * heads * d * d];
            using var dc = Up(cInit);
            backend.Gemm(transposed, dqkv, dqkv, dc);
            Compare("gemm", $"heads: Q^T K on strided views {transposed}", dc.ToArray(), ReferenceOps.Gemm(transposed, T(qkv), T(qkv), cInit), 2e-6 * len + 1e-5, 1e-5);
        }
        // Offsets into a larger buffer, as convolution uses them.
        {
            var spec = new GemmSpec(false, false, 9, 10, 11, OffsetA: 5, OffsetB: 7, OffsetC: 3);
            var a = Random(5 + 99, 90); var b = Random(7 + 110, 91); var c = Random(3 + 90, 92);
            using var da = Up(a); using var db = Up(b); using var dc = Up(c);
            backend.Gemm(spec, da, db, dc);
            Compare("gemm", "offsets 9x10x11", dc.ToArray(), ReferenceOps.Gemm(spec, T(a), T(b), c), 1e-4, 1e-5);
        }
    }

    static readonly UnaryOp[] AllUnary = Enum.GetValues<UnaryOp>();

    void Unary()
    {
        int n = small ? 37 : 1031;
        foreach (var op in AllUnary)
        {
            var x = op is UnaryOp.Log or UnaryOp.Sqrt ? Random(n, 3, 2f, 2.5f) : Random(n, 3, 5f);
            if (op == UnaryOp.Relu6) for (int i = 0; i < n; i++) x[i] *= 2f;
            using var dx = Up(x); using var dy = backend.Allocate(n);
            backend.Unary(op, dx, dy, n, 0.75f);
            var expected = x.Select(v => ReferenceOps.Unary(op, v, 0.75)).ToArray();
            Compare("unary", op.ToString(), dy.ToArray(), expected, 1e-6, 1e-5);
        }
    }

    void UnaryBackward()
    {
        int n = small ? 37 : 1031;
        foreach (var op in AllUnary)
            foreach (bool acc in new[] { false, true })
            {
                var x = op is UnaryOp.Log or UnaryOp.Sqrt ? Random(n, 4, 2f, 2.5f) : Random(n, 4, 5f);
                var g = Random(n, 5); var dx0 = Random(n, 6);
                using var bx = Up(x); using var bg = Up(g); using var bdx = Up(dx0);
                backend.UnaryBackward(op, bx, bg, bdx, n, 0.75f, acc);
                var expected = new double[n];
                for (int i = 0; i < n; i++) expected[i] = (acc ? dx0[i] : 0) + g[i] * ReferenceOps.UnaryGrad(op, x[i], 0.75);
                Compare("unary-backward", $"{op}{(acc ? " +=" : "")}", bdx.ToArray(), expected, 1e-6, 1e-5);
            }
        // The fused residual backward: y = relu(a + b) with exact zeros in y, both gradients from one mask.
        foreach (var (accA, accB) in new[] { (false, false), (true, false), (false, true), (true, true) })
        {
            var y = Random(n, 11, 2f); for (int i = 0; i < n; i += 3) y[i] = 0f;
            var g = Random(n, 12); var a0 = Random(n, 13); var b0 = Random(n, 14);
            using var by = Up(y); using var bg = Up(g); using var ba = Up(a0); using var bb = Up(b0);
            backend.AddReluBackward(by, bg, ba, bb, n, accA, accB);
            var ea = new double[n]; var eb = new double[n];
            for (int i = 0; i < n; i++)
            {
                double d = y[i] > 0 ? g[i] : 0;
                ea[i] = (accA ? a0[i] : 0) + d; eb[i] = (accB ? b0[i] : 0) + d;
            }
            string name = $"add-relu{(accA ? " da +=" : "")}{(accB ? " db +=" : "")}";
            Compare("unary-backward", name + " (da)", ba.ToArray(), ea, 1e-6, 1e-6);
            Compare("unary-backward", name + " (db)", bb.ToArray(), eb, 1e-6, 1e-6);
        }
    }

    void Binary()
    {
        int rows = small ? 3 : 37, cols = small ? 5 : 129;
        int n = rows * cols;
        foreach (var op in Enum.GetValues<BinaryOp>())
            foreach (var (bLen, inner, name) in new[] { (n, 1, "same shape"), (cols, 1, "row bias"), (rows, cols, "channel bias"), (1, 1, "scalar") })
            {
                var a = Random(n, 7); var b = Random(bLen, 8, 1f, op == BinaryOp.Div ? 2f : 0f);
                using var da = Up(a); using var db = Up(b); using var dy = backend.Allocate(n);
                backend.Binary(op, da, db, dy, n, bLen, inner);
                var expected = new double[n];
                for (int i = 0; i < n; i++) expected[i] = ReferenceOps.Binary(op, a[i], b[i / inner % bLen]);
                Compare("binary", $"{op} {name} {rows}x{cols}", dy.ToArray(), expected, 1e-6, 1e-6);
            }
    }

    void Axpby()
    {
        int n = small ? 41 : 100_003;
        foreach (float beta in new[] { 0f, 0.9f })
        {
            var x = Random(n, 9); var y = Random(n, 10);
            using var dx = Up(x); using var dy = Up(y);
            backend.Axpby(1.25f, dx, beta, dy, n);
            var expected = new double[n];
            for (int i = 0; i < n; i++) expected[i] = 1.25 * x[i] + beta * (double)y[i];
            Compare("axpby", $"n={n} beta={beta}", dy.ToArray(), expected, 1e-6, 1e-6);
        }
    }

    void Reduce()
    {
        var shapes = small ? new[] { (2, 7, 1), (3, 5, 3), (1, 33, 1) } : new[] { (5, 1031, 1), (3, 17, 129), (1, 100_003, 1), (64, 1, 7) };
        foreach (var (outer, axis, inner) in shapes)
            foreach (var op in Enum.GetValues<ReduceOp>())
            {
                var x = Random(outer * axis * inner, 11);
                using var dx = Up(x); using var dy = backend.Allocate(outer * inner);
                using var di = backend.AllocateInt(outer * inner);
                backend.Reduce(op, dx, dy, outer, axis, inner, op == ReduceOp.Max ? di : null);
                var expected = ReferenceOps.Reduce(op, x, outer, axis, inner, out var arg);
                Compare("reduce", $"{op} [{outer},{axis},{inner}]", dy.ToArray(), expected, 1e-6 * Math.Sqrt(axis), 1e-5);
                if (op == ReduceOp.Max) Compare("reduce", $"argmax [{outer},{axis},{inner}]", D(di.ToArray()).Select(v => (float)v).ToArray(), D(arg), 0, 0);
            }
    }

    void Transpose()
    {
        foreach (var (batch, rows, cols) in small ? new[] { (2, 3, 5) } : new[] { (1, 1, 1), (3, 37, 65), (1, 1024, 7) })
        {
            var x = Random(batch * rows * cols, 12);
            using var dx = Up(x); using var dy = backend.Allocate(x.Length);
            backend.Transpose(dx, dy, batch, rows, cols);
            var expected = new double[x.Length];
            for (int b = 0; b < batch; b++) for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++)
                expected[b * rows * cols + c * rows + r] = x[b * rows * cols + r * cols + c];
            Compare("transpose", $"{batch}x{rows}x{cols}", dy.ToArray(), expected, 0, 0);
        }
    }

    void CopyFill()
    {
        int n = small ? 29 : 4099;
        var x = Random(n, 13); var y = Random(n, 14);
        using var dx = Up(x); using var dy = Up(y);
        backend.Copy(dx, 3, dy, 5, n - 10);
        backend.Fill(dx, 1, 4, 2.5f);
        var ey = D(y); for (int i = 0; i < n - 10; i++) ey[5 + i] = x[3 + i];
        var ex = D(x); for (int i = 1; i < 5; i++) ex[i] = 2.5;
        Compare("copy-fill", "copy with offsets", dy.ToArray(), ey, 0, 0);
        Compare("copy-fill", "fill range", dx.ToArray(), ex, 0, 0);
    }

    void Init()
    {
        int n = small ? 101 : 100_001;
        using var u = backend.Allocate(n); using var g = backend.Allocate(n);
        backend.InitUniform(u, n, 42, -2f, 3f);
        backend.InitNormal(g, n, 42, 0.5f, 2f);
        var eu = new double[n]; var eg = new double[n];
        for (int i = 0; i < n; i++)
        {
            eu[i] = -2 + 5 * (ScalarMath.Hash(42, (ulong)i) >> 8) / 16777216.0;
            double u1 = ((ScalarMath.Hash(42, 2UL * (ulong)i) >> 8) + 1) / 16777216.0, u2 = (ScalarMath.Hash(42, 2UL * (ulong)i + 1) >> 8) / 16777216.0;
            eg[i] = 0.5 + 2 * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        Compare("init", "uniform [-2, 3)", u.ToArray(), eu, 1e-6, 1e-6);
        Compare("init", "normal (0.5, 2)", g.ToArray(), eg, 2e-5, 2e-5);
    }

    void Sgd()
    {
        int n = small ? 37 : 10_007;
        foreach (var cfg in new[] { new SgdConfig(0.1f, 0.9f, 5e-4f, false), new SgdConfig(0.05f, 0.9f, 1e-3f, true), new SgdConfig(0.1f, 0f, 0f) })
        {
            var p = Random(n, 15); var gr = Random(n, 16); var v = Random(n, 17, 0.1f);
            using var dp = Up(p); using var dg = Up(gr); using var dv = Up(v);
            var ep = D(p); var ev = D(v);
            for (int step = 0; step < 3; step++) { backend.SgdStep(dp, dg, dv, n, cfg); ReferenceOps.Sgd(ep, gr, ev, cfg); }
            Compare("sgd", $"lr={cfg.LearningRate} mu={cfg.Momentum} nesterov={cfg.Nesterov}", dp.ToArray(), ep, 1e-6, 1e-5);
            Compare("sgd", $"velocity nesterov={cfg.Nesterov}", dv.ToArray(), ev, 1e-6, 1e-5);
        }
    }

    void AdamW()
    {
        int n = small ? 37 : 10_007;
        var cfg = new AdamWConfig(1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f);
        var p = Random(n, 18); var gr = Random(n, 19);
        using var dp = Up(p); using var dg = Up(gr); using var dm = backend.Allocate(n); using var dv = backend.Allocate(n);
        backend.Fill(dm, 0, n, 0f); backend.Fill(dv, 0, n, 0f);
        var ep = D(p); var em = new double[n]; var ev = new double[n];
        for (int step = 1; step <= 3; step++) { backend.AdamWStep(dp, dg, dm, dv, n, cfg, step); ReferenceOps.AdamW(ep, gr, em, ev, cfg, step); }
        Compare("adamw", "3 steps", dp.ToArray(), ep, 1e-5, 1e-5);
    }

    IEnumerable<(int Rows, int Cols)> LossShapes => small ? [(1, 2), (3, 10), (5, 37)] : [(1, 2), (3, 10), (423, 1000), (64, 32000)];

    void Softmax()
    {
        foreach (var (rows, cols) in LossShapes)
            foreach (float t in new[] { 0.5f, 1f, 4f, 64f })
                foreach (bool log in new[] { false, true })
                {
                    var x = Logits(rows, cols, 20, confident: true);
                    using var dx = Up(x); using var dy = backend.Allocate(x.Length);
                    backend.Softmax(dx, dy, rows, cols, t, log);
                    var expected = new double[x.Length];
                    for (int r = 0; r < rows; r++)
                    {
                        var row = log ? ReferenceOps.LogSoftmax(x.AsSpan(r * cols, cols), t) : ReferenceOps.Softmax(x.AsSpan(r * cols, cols), t);
                        row.CopyTo(expected, r * cols);
                    }
                    Compare("softmax", $"{(log ? "log-" : "")}softmax {rows}x{cols} T={t}", dy.ToArray(), expected, log ? 1e-4 : 1e-6, 1e-5);
                }
    }

    void SoftmaxBackward()
    {
        foreach (var (rows, cols) in LossShapes.Take(3))
            foreach (bool log in new[] { false, true })
            {
                float t = 2f;
                var x = Logits(rows, cols, 21, confident: false);
                var g = Random(x.Length, 22);
                var y = new float[x.Length];
                for (int r = 0; r < rows; r++)
                {
                    var row = log ? ReferenceOps.LogSoftmax(x.AsSpan(r * cols, cols), t) : ReferenceOps.Softmax(x.AsSpan(r * cols, cols), t);
                    for (int j = 0; j < cols; j++) y[r * cols + j] = (float)row[j];
                }
                using var dyv = Up(y); using var dg = Up(g); using var dx = backend.Allocate(x.Length);
                backend.SoftmaxBackward(dyv, dg, dx, rows, cols, t, log, accumulate: false);
                var expected = new double[x.Length];
                for (int r = 0; r < rows; r++)
                {
                    var p = ReferenceOps.Softmax(x.AsSpan(r * cols, cols), t);
                    double dot = 0, sum = 0;
                    for (int j = 0; j < cols; j++) { dot += g[r * cols + j] * p[j]; sum += g[r * cols + j]; }
                    for (int j = 0; j < cols; j++)
                        expected[r * cols + j] = log ? (g[r * cols + j] - p[j] * sum) / t : p[j] * (g[r * cols + j] - dot) / t;
                }
                Compare("softmax-backward", $"{(log ? "log-" : "")}softmax {rows}x{cols}", dx.ToArray(), expected, 1e-5, 1e-4);
            }
    }

    void LabelSmoothing()
    {
        foreach (var (rows, cols) in LossShapes)
            foreach (float alpha in new[] { 0f, 0.1f, 0.2f })
                foreach (bool confident in new[] { false, true })
                {
                    var z = Logits(rows, cols, 30, confident);
                    var y = Labels(rows, cols, 31);
                    using var dz = Up(z); using var dy = Up(y); using var loss = backend.Allocate(rows); using var grad = backend.Allocate(z.Length);
                    float scale = 1f / rows;
                    backend.LabelSmoothingCrossEntropy(dz, dy, loss, grad, rows, cols, alpha, scale);
                    var el = new double[rows]; var eg = new double[z.Length]; var rowGrad = new double[cols];
                    for (int r = 0; r < rows; r++)
                    {
                        el[r] = ReferenceOps.LabelSmoothing(z.AsSpan(r * cols, cols), y[r], alpha, rowGrad);
                        for (int j = 0; j < cols; j++) eg[r * cols + j] = rowGrad[j] * scale;
                    }
                    string name = $"{rows}x{cols} alpha={alpha}{(confident ? " confident" : "")}";
                    Compare("label-smoothing-ce", "loss " + name, loss.ToArray(), el, 1e-5, 1e-5);
                    Compare("label-smoothing-ce", "grad " + name, grad.ToArray(), eg, 1e-6 * scale + 1e-9, 1e-4);
                }
    }

    void Kd()
    {
        foreach (var (rows, cols) in LossShapes)
            foreach (float t in small ? new[] { 0.5f, 4f, 64f } : new[] { 0.5f, 1f, 2f, 4f, 64f })
                foreach (float beta in new[] { 0f, 0.5f, 1f })
                    foreach (bool confident in new[] { false, true })
                    {
                        float alpha = beta == 0.5f ? 0.1f : 0f;
                        var zs = Logits(rows, cols, 40, confident);
                        var zt = Logits(rows, cols, 41, confident);
                        var y = Labels(rows, cols, 42);
                        using var ds = Up(zs); using var dt = Up(zt); using var dy = Up(y);
                        using var loss = backend.Allocate(rows); using var grad = backend.Allocate(zs.Length);
                        float scale = 1f / rows;
                        backend.KdLoss(ds, dt, dy, loss, grad, rows, cols, new KdConfig(t, beta, alpha), scale);
                        var el = new double[rows]; var eg = new double[zs.Length]; var rowGrad = new double[cols];
                        for (int r = 0; r < rows; r++)
                        {
                            el[r] = ReferenceOps.Kd(zs.AsSpan(r * cols, cols), zt.AsSpan(r * cols, cols), y[r], t, beta, alpha, rowGrad);
                            for (int j = 0; j < cols; j++) eg[r * cols + j] = rowGrad[j] * scale;
                        }
                        string name = $"{rows}x{cols} T={t} beta={beta} alpha={alpha}{(confident ? " confident" : "")}";
                        // T^2 amplifies float32 rounding of the KL term at large T.
                        Compare("kd-loss", "loss " + name, loss.ToArray(), el, 1e-5 * Math.Max(1, t * t) * 1e-1 + 1e-5, 1e-4);
                        Compare("kd-loss", "grad " + name, grad.ToArray(), eg, 1e-6 * scale * Math.Max(1, t) + 1e-9, 1e-4);
                    }
    }

    void Entropy()
    {
        foreach (var (rows, cols) in LossShapes)
            foreach (float t in new[] { 0.5f, 1f, 2f, 64f })
            {
                var z = Logits(rows, cols, 50, confident: true);
                using var dz = Up(z); using var h = backend.Allocate(rows);
                backend.Entropy(dz, h, rows, cols, t);
                var eh = new double[rows];
                for (int r = 0; r < rows; r++) eh[r] = ReferenceOps.Entropy(z.AsSpan(r * cols, cols), t);
                Compare("entropy", $"{rows}x{cols} T={t}", h.ToArray(), eh, 1e-5, 1e-5);
            }
    }

    void TopK()
    {
        foreach (var (rows, cols) in LossShapes)
            foreach (int k in new[] { 1, Math.Min(5, cols) })
            {
                var z = Logits(rows, cols, 60, confident: false);
                for (int i = 0; i < z.Length; i += 7) z[i] = 0.5f;  // ties
                var y = Labels(rows, cols, 61);
                using var dz = Up(z); using var dy = Up(y); using var c = backend.AllocateInt(rows);
                backend.TopKCorrect(dz, dy, c, rows, cols, k);
                var expected = new double[rows];
                for (int r = 0; r < rows; r++) expected[r] = ReferenceOps.TopKCorrect(z.AsSpan(r * cols, cols), y[r], k) ? 1 : 0;
                Compare("topk", $"{rows}x{cols} k={k}", D(c.ToArray()).Select(v => (float)v).ToArray(), expected, 0, 0);
            }
    }

    void Confusion()
    {
        int n = small ? 50 : 10_000, k = 10;
        var pred = Labels(n, k, 70); var y = Labels(n, k, 71);
        using var dp = Up(pred); using var dy = Up(y); using var m = backend.AllocateInt(k * k);
        backend.FillInt(m, 0, k * k, 0);
        backend.ConfusionMatrix(dp, dy, m, n, k);
        var expected = new double[k * k];
        for (int i = 0; i < n; i++) expected[y[i] * k + pred[i]]++;
        Compare("confusion", $"n={n} K={k}", D(m.ToArray()).Select(v => (float)v).ToArray(), expected, 0, 0);
    }

    /// <summary>Odd sizes, stride 2, padding, groups, depthwise and 1x1; a ResNet-sized layer when not small.</summary>
    static IEnumerable<ConvSpec> ConvSpecs(bool small)
    {
        yield return new ConvSpec(2, 3, 7, 6, 4, 3, 3, 1, 1);
        yield return new ConvSpec(2, 4, 9, 9, 6, 3, 3, 2, 1, 2);
        yield return new ConvSpec(2, 5, 8, 7, 5, 3, 3, 1, 1, 5);
        yield return new ConvSpec(2, 4, 9, 9, 4, 3, 3, 2, 1, 4);
        yield return new ConvSpec(2, 6, 5, 5, 8, 1, 1, 1, 0);
        yield return new ConvSpec(1, 2, 8, 6, 3, 5, 3, 1, 0);
        yield return new ConvSpec(2, 3, 10, 9, 4, 3, 3, 2, 1);
        yield return new ConvSpec(2, 4, 8, 8, 6, 1, 1, 2, 0);
        yield return new ConvSpec(2, 4, 7, 9, 6, 1, 1, 2, 0);        // strided 1x1 on odd sizes
        yield return new ConvSpec(2, 4, 7, 7, 6, 1, 1, 3, 0, 2);     // stride 3, groups
        yield return new ConvSpec(2, 2, 11, 11, 3, 5, 5, 2, 2);
        // 16 and 32 output channels (and 16 input channels, for the input gradient) take the direct 16-row kernel.
        yield return new ConvSpec(2, 3, 9, 7, 16, 3, 3, 1, 1);
        yield return new ConvSpec(2, 4, 9, 9, 32, 3, 3, 2, 1);
        yield return new ConvSpec(2, 16, 6, 5, 8, 3, 3, 1, 1);
        // Depthwise: 5x5, no padding, a 3x1 kernel (not flippable: the grid scatter), stride 2 on an odd size.
        yield return new ConvSpec(2, 3, 9, 8, 3, 5, 5, 1, 2, 3);
        yield return new ConvSpec(2, 3, 8, 9, 3, 3, 3, 1, 0, 3);
        yield return new ConvSpec(2, 3, 8, 9, 3, 3, 1, 1, 1, 3);
        yield return new ConvSpec(2, 4, 13, 11, 4, 3, 3, 2, 1, 4);
        yield return new ConvSpec(2, 3, 9, 10, 3, 3, 3, 2, 0, 3);
        yield return new ConvSpec(3, 4, 12, 10, 4, 3, 3, 1, 1, 4);      // rows of one 512-bit vector written straight into y
        if (!small)
        {
            // 7x7 outputs and stride 2 with whole 16-channel blocks take the CPU's channels-in-lanes kernels (forward,
            // weight gradient, input gradient through the flipped adjoint or the stride-2 scatter).
            yield return new ConvSpec(3, 32, 7, 7, 64, 3, 3, 1, 1);
            yield return new ConvSpec(2, 16, 14, 14, 16, 3, 3, 2, 1);
            yield return new ConvSpec(2, 8, 14, 13, 16, 3, 3, 2, 1);
            yield return new ConvSpec(2, 32, 7, 7, 32, 3, 3, 1, 1, 2);
            yield return new ConvSpec(2, 16, 7, 7, 48, 3, 3, 1, 1);
            yield return new ConvSpec(2, 32, 14, 14, 32, 3, 3, 2, 1);
            // Strided 1x1 projections with whole channel blocks (forward on the lanes kernel; the 32-channel input
            // gradient as the lanes scatter), and an odd input size.
            yield return new ConvSpec(2, 16, 14, 14, 32, 1, 1, 2, 0);
            yield return new ConvSpec(2, 32, 14, 14, 64, 1, 1, 2, 0);
            yield return new ConvSpec(2, 32, 13, 13, 16, 1, 1, 2, 0);
            yield return new ConvSpec(8, 16, 28, 28, 32, 3, 3, 1, 1);
            yield return new ConvSpec(8, 16, 28, 28, 32, 3, 3, 2, 1);
            yield return new ConvSpec(4, 32, 14, 14, 32, 3, 3, 2, 1, 32);
            // Winograd: image batches that do not divide the images (14x14: three images per GEMM), and rows of more
            // than one vector of tiles on an odd height.
            yield return new ConvSpec(5, 32, 14, 14, 32, 3, 3, 1, 1);
            yield return new ConvSpec(2, 16, 9, 40, 16, 3, 3, 1, 1);
            // Whole-image Winograd tiles (6x6 to 8x8 planes on 512-bit vectors): batches of three images with a
            // remainder, square and oblong planes, even and odd sizes.
            yield return new ConvSpec(5, 16, 8, 8, 32, 3, 3, 1, 1);
            yield return new ConvSpec(4, 32, 6, 7, 16, 3, 3, 1, 1);
            yield return new ConvSpec(7, 64, 7, 7, 64, 3, 3, 1, 1);
            // A grid whose image batches do not divide the images (the last batch is laid out differently).
            yield return new ConvSpec(6, 4, 28, 28, 8, 3, 3, 2, 1);
            yield return new ConvSpec(3, 8, 28, 28, 8, 3, 3, 2, 1, 8);
        }
    }

    /// <summary>Every convolution case on every algorithm that supports its shape, on both SIMD widths, when the
    /// backend is the CPU one (the llm.c habit: each kernel variant checked on its own); the backend as it is
    /// otherwise.</summary>
    void Conv()
    {
        if (backend is not CpuBackend cpu) { ForEachVariant("conv2d", ConvVariants, () => ConvCases(backend, "", null)); return; }
        foreach (int bits in new[] { 512, 256 })
        {
            var onWidth = cpu.SimdBits == bits ? cpu : SimdSibling(cpu.Threads, bits);
            var previous = onWidth.ForcedConvAlgorithm;
            try { ConvCases(onWidth, $"{bits}-bit", onWidth); }
            finally { onWidth.ForcedConvAlgorithm = previous; }
        }
    }

    static readonly Dictionary<(int, int), CpuBackend> s_siblings = [];

    /// <summary>A CPU backend on the other SIMD width, kept for the process (the Vector512 one runs in software
    /// vectors on hosts without AVX-512: correct, slow, so such hosts check the small shapes on it).</summary>
    static CpuBackend SimdSibling(int threads, int bits)
    {
        lock (s_siblings)
        {
            if (!s_siblings.TryGetValue((threads, bits), out var b)) s_siblings[(threads, bits)] = b = CpuBackend.WithSimdWidth(threads, bits);
            return b;
        }
    }

    /// <summary>[mean per channel, biased variance per channel] of an NCHW tensor, in float64.</summary>
    static double[] ChannelStats(double[] y, int n, int k, int hw)
    {
        var r = new double[2 * k];
        for (int c = 0; c < k; c++)
        {
            double s = 0, sq = 0;
            for (int i = 0; i < n; i++) for (int p = 0; p < hw; p++) s += y[((long)i * k + c) * hw + p];
            double mu = s / ((double)n * hw);
            for (int i = 0; i < n; i++) for (int p = 0; p < hw; p++) { double d = y[((long)i * k + c) * hw + p] - mu; sq += d * d; }
            r[c] = mu; r[k + c] = sq / ((double)n * hw);
        }
        return r;
    }

    void ConvCases(IBackend b, string width, CpuBackend? planned)
    {
        bool software = planned != null && planned.SimdBits == 512 && !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;
        foreach (var spec in ConvSpecs(small || software))
        {
            if (b is IlgpuBackend gpu && spec.IsDepthwise && gpu.ForcedConvKernel == GpuConvKernel.ImplicitGemm) continue;   // always direct
            var x = Random((int)spec.InputSize, 80); var w = Random((int)spec.WeightSize, 81); var g = Random((int)spec.OutputSize, 82);
            var prevDx = Random(x.Length, 83); var prevDw = Random(w.Length, 84);
            var ey = ReferenceOps.Conv2d(spec, T(x), T(w));
            var (ex, ew) = ReferenceOps.Conv2dBackward(spec, T(x), T(w), T(g));
            using var dx = Up(b, x); using var dw = Up(b, w); using var dg = Up(b, g); using var y = b.Allocate(g.Length);
            double forwardTol = 2e-6 * spec.CPerGroup * spec.R * spec.S + 1e-5, inputTol = 2e-6 * spec.KPerGroup * spec.R * spec.S + 1e-5;
            double weightTol = 2e-6 * spec.N * spec.OutH * spec.OutW + 1e-5;
            foreach (var (pass, algorithm) in Algorithms(planned, spec))
            {
                if (planned != null) planned.ForcedConvAlgorithm = algorithm;
                string tag = planned == null ? "" : $" [{ConvPlanner.Name(algorithm!.Value)}, {width}]";
                if (pass == ConvPass.Forward)
                {
                    b.Conv2d(spec, dx, dw, y);
                    Compare("conv2d", "forward " + spec + tag, y.ToArray(), ey, forwardTol, 1e-4);
                    // The batch-norm statistics formed in the output pass: the float64 mean and biased variance of
                    // each channel of the reference output.
                    using var stats = b.Allocate(2 * spec.K);
                    b.Conv2d(spec, dx, dw, y, stats);
                    Compare("conv2d", "forward " + spec + tag + " (with stats)", y.ToArray(), ey, forwardTol, 1e-4);
                    Compare("conv2d", "channel stats " + spec + tag, stats.ToArray(), ChannelStats(ey, spec.N, spec.K, spec.OutH * spec.OutW), forwardTol, 1e-4);
                    continue;
                }
                foreach (bool acc in new[] { false, true })
                {
                    string mode = acc ? " accumulate" : "";
                    if (pass == ConvPass.InputGrad)
                    {
                        using var gx = Up(b, prevDx);
                        b.Conv2dBackwardInput(spec, dg, dw, gx, acc);
                        Compare("conv2d", "input grad " + spec + tag + mode, gx.ToArray(), acc ? ex.Select((v, i) => v + prevDx[i]).ToArray() : ex, inputTol, 1e-4);
                    }
                    else
                    {
                        using var gw = Up(b, prevDw);
                        b.Conv2dBackwardWeight(spec, dx, dg, gw, acc);
                        Compare("conv2d", "weight grad " + spec + tag + mode, gw.ToArray(), acc ? ew.Select((v, i) => v + prevDw[i]).ToArray() : ew, weightTol, 1e-4);
                    }
                }
            }
        }
    }

    /// <summary>(pass, algorithm) pairs to run: every supported algorithm of each pass on a CPU backend; the
    /// backend's own choice (null) otherwise.</summary>
    static IEnumerable<(ConvPass Pass, ConvAlgorithm? Algorithm)> Algorithms(CpuBackend? planned, ConvSpec spec)
    {
        foreach (var pass in Enum.GetValues<ConvPass>())
        {
            if (planned == null) { yield return (pass, null); continue; }
            foreach (var a in ConvPlanner.All)
                if (ConvPlanner.Supports(a, spec, pass)) yield return (pass, a);
        }
    }

    void BatchNorm()
    {
        var specs = small ? new[] { new BatchNormSpec(3, 4, 5), new BatchNormSpec(7, 3, 1) }
                          : new[] { new BatchNormSpec(3, 4, 5), new BatchNormSpec(7, 3, 1), new BatchNormSpec(32, 16, 196) };
        foreach (var plain in specs)
            foreach (var act in new[] { NormActivation.None, NormActivation.Relu, NormActivation.Relu6 })
            foreach (bool training in new[] { true, false })
            {
                var spec = plain with { Activation = act };
                var x = Random((int)spec.Size, 90, 2f, 0.5f); var dyh = Random((int)spec.Size, 91);
                // ReLU6 needs outputs above 6 too: larger gammas.
                var gamma = Random(spec.C, 92, act == NormActivation.Relu6 ? 3f : 0.5f, act == NormActivation.Relu6 ? 4f : 1f); var beta = Random(spec.C, 93);
                var rm = Random(spec.C, 94, 0.2f); var rv = Random(spec.C, 95, 0.3f, 1f);
                using var dx = Up(x); using var dg = Up(gamma); using var db = Up(beta); using var y = backend.Allocate(x.Length);
                using var mean = backend.Allocate(spec.C); using var inv = backend.Allocate(spec.C); using var drm = Up(rm); using var drv = Up(rv);
                backend.BatchNorm(spec, dx, dg, db, y, mean, inv, drm, drv, training);
                var r = ReferenceOps.BatchNorm(spec, x, gamma, beta, rm, rv, training);
                string name = $"N={spec.N} C={spec.C} spatial={spec.Spatial} {(training ? "train" : "eval")}{(act == NormActivation.None ? "" : " + " + act)}";
                Compare("batchnorm", "y " + name, y.ToArray(), r.Y, 1e-5, 1e-4);
                Compare("batchnorm", "mean " + name, mean.ToArray(), r.Mean, 1e-6, 1e-5);
                Compare("batchnorm", "invstd " + name, inv.ToArray(), r.InvStd, 1e-6, 1e-5);
                Compare("batchnorm", "running mean " + name, drm.ToArray(), r.RunMean, 1e-6, 1e-5);
                Compare("batchnorm", "running var " + name, drv.ToArray(), r.RunVar, 1e-6, 1e-5);
                if (training)
                {
                    // Statistics handed in (as a convolution writes them): the same output and running statistics.
                    using var stats = Up(ChannelStats(x.Select(v => (double)v).ToArray(), spec.N, spec.C, spec.Spatial).Select(v => (float)v).ToArray());
                    using var y2 = backend.Allocate(x.Length); using var m2 = backend.Allocate(spec.C); using var i2 = backend.Allocate(spec.C);
                    using var rm2 = Up(rm); using var rv2 = Up(rv);
                    backend.BatchNorm(spec, dx, dg, db, y2, m2, i2, rm2, rv2, training, stats);
                    Compare("batchnorm", "y with given stats " + name, y2.ToArray(), r.Y, 1e-5, 1e-4);
                    Compare("batchnorm", "invstd with given stats " + name, i2.ToArray(), r.InvStd, 1e-6, 1e-5);
                    Compare("batchnorm", "running var with given stats " + name, rv2.ToArray(), r.RunVar, 1e-6, 1e-5);
                }
                var e = ReferenceOps.BatchNormBackward(spec, x, dyh, gamma, rm, rv, training, beta);
                using var gy = Up(dyh); using var gx = backend.Allocate(x.Length); using var gg = backend.Allocate(spec.C); using var gb = backend.Allocate(spec.C);
                backend.BatchNormBackward(spec, dx, gy, dg, mean, inv, gx, gg, gb, training, accumulate: false, db);
                Compare("batchnorm", "input grad " + name, gx.ToArray(), e.Dx, 1e-5, 1e-4);
                Compare("batchnorm", "gamma grad " + name, gg.ToArray(), e.DGamma, 1e-5 * spec.N * spec.Spatial, 1e-4);
                Compare("batchnorm", "beta grad " + name, gb.ToArray(), e.DBeta, 1e-5 * spec.N * spec.Spatial, 1e-4);
            }
        foreach (var spec in specs)
            foreach (bool training in new[] { true, false })
                BatchNormAddRelu(spec, training);
    }

    /// <summary>The fused residual end relu(batchnorm(x) + r) against the float64 batch norm plus add-relu, forward
    /// and backward, with each gradient written or added to.</summary>
    void BatchNormAddRelu(BatchNormSpec spec, bool training)
    {
        var x = Random((int)spec.Size, 96, 2f, 0.5f); var res = Random((int)spec.Size, 97); var dyh = Random((int)spec.Size, 98);
        var gamma = Random(spec.C, 92, 0.5f, 1f); var beta = Random(spec.C, 93);
        var rm = Random(spec.C, 94, 0.2f); var rv = Random(spec.C, 95, 0.3f, 1f);
        using var dx = Up(x); using var dres = Up(res); using var dg = Up(gamma); using var db = Up(beta); using var y = backend.Allocate(x.Length);
        using var mean = backend.Allocate(spec.C); using var inv = backend.Allocate(spec.C); using var drm = Up(rm); using var drv = Up(rv);
        backend.BatchNormAddRelu(spec, dx, dg, db, dres, y, mean, inv, drm, drv, training);
        var r = ReferenceOps.BatchNorm(spec, x, gamma, beta, rm, rv, training);
        var ey = r.Y.Select((v, i) => Math.Max(v + res[i], 0)).ToArray();
        string name = $"N={spec.N} C={spec.C} spatial={spec.Spatial} {(training ? "train" : "eval")} + residual + relu";
        Compare("batchnorm", "y " + name, y.ToArray(), ey, 1e-5, 1e-4);
        Compare("batchnorm", "running var " + name, drv.ToArray(), r.RunVar, 1e-6, 1e-5);
        var g = dyh.Select((v, i) => ey[i] > 0 ? v : 0f).ToArray();
        var e = ReferenceOps.BatchNormBackward(spec, x, g, gamma, rm, rv, training, beta);
        var before = Random((int)spec.Size, 99);
        foreach (var (accX, accR) in new[] { (false, false), (true, true), (false, true), (true, false) })
        {
            using var gy = Up(dyh); using var gx = Up(before); using var gr = Up(before); using var gg = backend.Allocate(spec.C); using var gb = backend.Allocate(spec.C);
            backend.BatchNormAddReluBackward(spec, dx, y, gy, dg, mean, inv, gx, gr, gg, gb, training, accX, accR);
            string tag = $"{name}{(accX ? ", dx added" : "")}{(accR ? ", dr added" : "")}";
            Compare("batchnorm", "input grad " + tag, gx.ToArray(), e.Dx.Select((v, i) => v + (accX ? before[i] : 0)).ToArray(), 1e-5, 1e-4);
            Compare("batchnorm", "residual grad " + tag, gr.ToArray(), g.Select((v, i) => (double)v + (accR ? before[i] : 0)).ToArray(), 1e-6, 1e-5);
            Compare("batchnorm", "gamma grad " + tag, gg.ToArray(), e.DGamma, 1e-5 * spec.N * spec.Spatial, 1e-4);
            Compare("batchnorm", "beta grad " + tag, gb.ToArray(), e.DBeta, 1e-5 * spec.N * spec.Spatial, 1e-4);
        }
    }

    void Pool()
    {
        var specs = new List<PoolSpec>
        {
            new(PoolOp.Max, 2, 3, 7, 6, 2, 2), new(PoolOp.Max, 2, 2, 9, 9, 3, 2, 1), new(PoolOp.Max, 1, 2, 5, 5, 3, 1, 1),
            new(PoolOp.Max, 1, 3, 5, 37, 2, 2),   // odd sizes, 18 outputs a row: the CPU's 8-wide 2x2 path and its tail
            new(PoolOp.Average, 2, 3, 7, 6, 2, 2), new(PoolOp.Average, 2, 2, 9, 9, 3, 2, 1),
        };
        if (!small) specs.Add(new PoolSpec(PoolOp.Max, 16, 32, 28, 28, 2, 2));
        foreach (var spec in specs)
        {
            var x = Random((int)spec.InputSize, 100); var g = Random((int)spec.OutputSize, 101);
            using var dx = Up(x); using var y = backend.Allocate(g.Length); using var dg = Up(g); using var gx = backend.Allocate(x.Length);
            using var arg = spec.Op == PoolOp.Max ? backend.AllocateInt(g.Length) : null;
            backend.Pool2d(spec, dx, y, arg);
            backend.Pool2dBackward(spec, dg, arg, gx, accumulate: false);
            var (ey, ex) = ReferenceOps.Pool2d(spec, x, g);
            string name = $"{spec.Op} x[{spec.N},{spec.C},{spec.H},{spec.W}] k={spec.Kernel} s={spec.Stride} p={spec.Pad}";
            Compare("pool", "forward " + name, y.ToArray(), ey, 1e-6, 1e-5);
            Compare("pool", "input grad " + name, gx.ToArray(), ex, 1e-6, 1e-5);
        }
    }

    void Dropout()
    {
        int n = small ? 1000 : 100_000;
        foreach (float p in new[] { 0f, 0.1f, 0.2f, 0.5f })
        {
            var x = Random(n, 110, 1f, 2f);   // values in [1, 3]: a zero output can only come from the mask
            using var dx = Up(x); using var y = backend.Allocate(n);
            backend.Dropout(dx, y, n, p, seed: 7);
            var expected = ReferenceOps.Dropout(x, p, 7);
            Compare("dropout", $"n={n} p={p}", y.ToArray(), expected, 1e-6, 1e-6);
            // The kept fraction must be close to 1 - p (binomial standard deviation, 6 sigma).
            double kept = expected.Count(v => v != 0) / (double)n, sigma = Math.Sqrt(p * (1 - p) / n);
            _results.Add(new CheckResult("dropout", $"kept fraction p={p}", Math.Abs(kept - (1 - p)) <= 6 * sigma + 1e-9,
                Math.Abs(kept - (1 - p)), 0, kept, 1 - p, 6 * sigma, 0, 0, 1));
        }
    }

    /// <summary>Odd sizes and a class with no rows; a 60,000 x 512 case (the analysis size) when not small.</summary>
    void Centroids()
    {
        // More classes than a group has threads, and (1,000 classes) the per-element fallback of the segmented reduction.
        var cases = small ? new[] { (37, 5, 4), (100, 17, 10), (300, 20, 70), (500, 33, 1000) }
                          : new[] { (37, 5, 4), (100, 17, 10), (300, 20, 70), (500, 33, 1000), (60000, 512, 10) };
        foreach (var (n, d, k) in cases)
        {
            var f = Random(n * d, 120, 3f, 1f);
            var y = Labels(n, k - 1, 121);     // the last class gets no rows
            using var df = Up(f); using var dy = Up(y); using var c = backend.Allocate(k * d);
            backend.ClassCentroids(df, dy, c, n, d, k);
            Compare("centroids", $"n={n} d={d} K={k}", c.ToArray(), ReferenceOps.ClassCentroids(f, y, n, d, k), 1e-5, 1e-5);
        }
    }

    void Distances()
    {
        var cases = small ? new[] { (3, 4, 7), (10, 10, 33) } : new[] { (3, 4, 7), (10, 10, 33), (200, 150, 512) };
        foreach (var (m, n, d) in cases)
        {
            var a = Random(m * d, 130); var b = Random(n * d, 131);
            using var da = Up(a); using var db = Up(b); using var dd = backend.Allocate(m * n);
            backend.PairwiseDistances(da, db, dd, m, n, d);
            Compare("distances", $"{m}x{n} d={d}", dd.ToArray(), ReferenceOps.PairwiseDistances(a, b, m, n, d), 1e-5, 1e-5);
        }
    }

    /// <summary>Q and R against the float64 Householder reference (both with R's diagonal non-negative), and
    /// Q's orthonormality: max |Q^T Q - I| must stay below 1e-5.</summary>
    void Qr()
    {
        var cases = small ? new[] { (7, 3), (50, 5) } : new[] { (7, 3), (50, 5), (513, 3), (300, 70), (4000, 64) };
        foreach (var (m, n) in cases)
        {
            var a = Random(m * n, 140 + n);
            using var da = Up(a); using var q = backend.Allocate(m * n); using var r = backend.Allocate(n * n);
            backend.HouseholderQr(da, q, r, m, n);
            var (eq, er) = ReferenceOps.HouseholderQr(a, m, n);
            var gotQ = q.ToArray();
            Compare("qr", $"Q {m}x{n}", gotQ, eq, 2e-5, 1e-4);
            Compare("qr", $"R {m}x{n}", r.ToArray(), er, 2e-5 * Math.Sqrt(m), 1e-4);
            var gram = new double[n * n];
            for (int i = 0; i < m; i++)
                for (int x = 0; x < n; x++)
                    for (int y = 0; y < n; y++) gram[x * n + y] += (double)gotQ[i * n + x] * gotQ[i * n + y];
            var identity = new float[n * n];
            for (int x = 0; x < n; x++) identity[x * n + x] = 1f;
            Compare("qr", $"Q^T Q = I {m}x{n}", identity, gram, 1e-5, 0);
        }
    }

    void Covariance()
    {
        var cases = small ? new[] { (2, 3), (101, 7) } : new[] { (2, 3), (101, 7), (20000, 64) };
        foreach (var (n, d) in cases)
        {
            var x = Random(n * d, 150 + d, 2f, 0.5f);
            using var dx = Up(x); using var mean = backend.Allocate(d); using var cov = backend.Allocate(d * d);
            backend.Covariance(dx, mean, cov, n, d);
            var (em, ec) = ReferenceOps.Covariance(x, n, d);
            Compare("covariance", $"mean n={n} d={d}", mean.ToArray(), em, 1e-5, 1e-4);
            Compare("covariance", $"cov n={n} d={d}", cov.ToArray(), ec, 1e-5, 1e-4);
        }
    }

    static float[] Symmetric(int d, int seed)
    {
        var x = Random(d * d, seed);
        var s = new float[d * d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) s[i * d + j] = x[Math.Min(i, j) * d + Math.Max(i, j)];
        return s;
    }

    /// <summary>Eigenvalues and (signed) eigenvectors against serial float64 Jacobi; tolerances relative to the
    /// spectral scale. Random symmetric matrices have well-separated eigenvalues, so vectors are well defined.</summary>
    void Eigen()
    {
        var sizes = small ? new[] { 1, 5, 12 } : new[] { 1, 5, 12, 65 };
        foreach (int d in sizes)
        {
            var a = Symmetric(d, 160 + d);
            using var da = Up(a); using var values = backend.Allocate(d); using var vectors = backend.Allocate(d * d);
            backend.SymmetricEigen(da, values, vectors, d);
            var (ev, evec) = ReferenceOps.SymmetricEigen(a, d);
            double scale = ev.Max(Math.Abs);
            Compare("eigen", $"values d={d}", values.ToArray(), ev, 1e-5 * scale, 0);
            Compare("eigen", $"vectors d={d}", vectors.ToArray(), evec, 1e-4, 0);
        }
    }

    /// <summary>PCA (covariance, eigen, projection) against the float64 chain: projected coordinates of the
    /// first components, whose sign is fixed by the eigenvector convention.</summary>
    void PcaCheck()
    {
        var cases = small ? new[] { (60, 3, 2) } : new[] { (60, 3, 2), (3000, 40, 4) };
        foreach (var (n, d, k) in cases)
        {
            var x = Random(n * d, 170 + d);
            for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) x[i * d + j] *= (j + 1);   // distinct variances
            var model = Pca.Fit(backend, x, n, d, k);
            var got = Pca.Transform(backend, model, x, n);
            var (mean, cov) = ReferenceOps.Covariance(x, n, d);
            var covF = cov.Select(v => (float)v).ToArray();
            var (_, vec) = ReferenceOps.SymmetricEigen(covF, d);
            var expected = new double[n * k];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < k; c++)
                {
                    double s = 0;
                    for (int j = 0; j < d; j++) s += (x[i * d + j] - mean[j]) * vec[c * d + j];
                    expected[i * k + c] = s;
                }
            Compare("pca", $"projection n={n} d={d} k={k}", got, expected, 1e-3, 1e-4);
        }
    }
}
