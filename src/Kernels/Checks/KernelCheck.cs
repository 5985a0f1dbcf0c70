using LsKd.Kernels.Reference;

namespace LsKd.Kernels.Checks;

/// <summary>One comparison of a backend op against its float64 reference.</summary>
public sealed record CheckResult(string Op, string Case, bool Passed, double WorstError, long WorstIndex, double Got, double Expected,
    double Atol, double Rtol, int Mismatches, long Count)
{
    public override string ToString() =>
        $"{Op} [{Case}]: {(Passed ? "ok" : "FAIL")} worst |err| {WorstError:G3} at {WorstIndex} (got {Got:G7}, ref {Expected:G7}), " +
        $"tol {Atol:G2} + {Rtol:G2}|ref|, {Mismatches}/{Count} outside";
}

/// <summary>
/// Runs every op of a backend on seeded random inputs and compares with <see cref="ReferenceOps"/> using
/// |got - ref| &lt;= atol + rtol |ref| (llm.c style; non-finite references are skipped). The same cases back the
/// unit tests and `lskd check --device ...`. <paramref name="small"/> keeps shapes tiny for ILGPU's slow CPU emulator.
/// </summary>
public sealed class KernelCheck(IBackend backend, bool small = false)
{
    readonly List<CheckResult> _results = [];

    public static IReadOnlyList<string> Ops { get; } =
        ["gemm", "unary", "unary-backward", "binary", "axpby", "reduce", "transpose", "copy-fill", "init", "sgd", "adamw",
         "softmax", "softmax-backward", "label-smoothing-ce", "kd-loss", "entropy", "topk", "confusion"];

    public IReadOnlyList<CheckResult> Run(string op)
    {
        _results.Clear();
        switch (op)
        {
            case "gemm": Gemm(); break;
            case "unary": Unary(); break;
            case "unary-backward": UnaryBackward(); break;
            case "binary": Binary(); break;
            case "axpby": Axpby(); break;
            case "reduce": Reduce(); break;
            case "transpose": Transpose(); break;
            case "copy-fill": CopyFill(); break;
            case "init": Init(); break;
            case "sgd": Sgd(); break;
            case "adamw": AdamW(); break;
            case "softmax": Softmax(); break;
            case "softmax-backward": SoftmaxBackward(); break;
            case "label-smoothing-ce": LabelSmoothing(); break;
            case "kd-loss": Kd(); break;
            case "entropy": Entropy(); break;
            case "topk": TopK(); break;
            case "confusion": Confusion(); break;
            default: throw new ArgumentException($"unknown op '{op}'; valid ops: {string.Join(", ", Ops)}", nameof(op));
        }
        return [.. _results];
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

    DeviceBuffer<float> Up(float[] x) { var b = backend.Allocate(x.Length); b.Upload(x); return b; }
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
        _results.Add(new CheckResult(op, name, bad == 0, Math.Max(worst, 0), worstIdx, g, e, atol, rtol, bad, expected.Length));
    }

    static double[] D(ReadOnlySpan<float> x) { var d = new double[x.Length]; for (int i = 0; i < x.Length; i++) d[i] = x[i]; return d; }
    static double[] D(ReadOnlySpan<int> x) { var d = new double[x.Length]; for (int i = 0; i < x.Length; i++) d[i] = x[i]; return d; }

    // ---- cases ----------------------------------------------------------------------------------------------

    void Gemm()
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
                Compare("gemm", $"{(ta ? "T" : "N")}{(tb ? "T" : "N")} {m}x{n}x{k} b{batch} beta={beta}", dc.ToArray(), ReferenceOps.Gemm(spec, a, b, c), 2e-6 * k + 1e-5, 1e-5);
            }
        // Offsets into a larger buffer, as convolution uses them.
        {
            var spec = new GemmSpec(false, false, 9, 10, 11, OffsetA: 5, OffsetB: 7, OffsetC: 3);
            var a = Random(5 + 99, 90); var b = Random(7 + 110, 91); var c = Random(3 + 90, 92);
            using var da = Up(a); using var db = Up(b); using var dc = Up(c);
            backend.Gemm(spec, da, db, dc);
            Compare("gemm", "offsets 9x10x11", dc.ToArray(), ReferenceOps.Gemm(spec, a, b, c), 1e-4, 1e-5);
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
}
