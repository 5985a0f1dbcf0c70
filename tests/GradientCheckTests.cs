using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Reference;

namespace LsKd.Tests;

/// <summary>Finite-difference gradient checks: the fp32 analytic gradient from the tape against central
/// differences (h = 1e-5) of the float64 reference definition of loss = sum(op(x) * R), R fixed random weights.
/// Tolerance: |analytic - numeric| &lt;= 2e-4 + 2e-3 |numeric|.</summary>
[TestFixture]
public partial class GradientCheckTests
{
    static readonly string[] GradBackends = ["cpu-v512-2t", "ilgpu-cpu-g64"];

    static float[] Rand(int n, int seed, float scale = 1f, float shift = 0f)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => shift + scale * (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>Builds the fp32 graph, back-propagates, and compares every input's gradient with float64 central
    /// differences of <paramref name="reference"/>.</summary>
    static void Check(string backendName, int[][] shapes, Func<Tensor[], Tensor> build, Func<double[][], double> reference,
        float scale = 1f, float shift = 0f, int seed = 1)
    {
        var be = Backends.Get(backendName);
        var data = shapes.Select((s, i) => Rand(Tensor.ShapeSize(s), seed + i, scale, shift)).ToArray();
        var inputs = shapes.Select((s, i) => Tensor.FromArray(be, data[i], s, requiresGrad: true)).ToArray();
        try
        {
            var loss = build(inputs);
            Tape.Backward(loss);
            for (int i = 0; i < inputs.Length; i++)
            {
                var analytic = inputs[i].GradToArray();
                var x = data.Select(d => d.Select(v => (double)v).ToArray()).ToArray();
                int n = x[i].Length, stride = Math.Max(1, n / 24);
                for (int j = 0; j < n; j += stride)
                {
                    const double h = 1e-5;
                    double orig = x[i][j];
                    x[i][j] = orig + h; double fp = reference(x);
                    x[i][j] = orig - h; double fm = reference(x);
                    x[i][j] = orig;
                    double numeric = (fp - fm) / (2 * h);
                    Assert.That(analytic[j], Is.EqualTo(numeric).Within(2e-4 + 2e-3 * Math.Abs(numeric)),
                        $"input {i} element {j}: analytic {analytic[j]} vs numeric {numeric}");
                }
            }
        }
        finally
        {
            Tape.Current.Reset();
            foreach (var t in inputs) { t.Buffer.Dispose(); t.Grad?.Dispose(); }
        }
    }

    /// <summary>sum(y * R) for a fixed random R, so every output element matters with its own weight.</summary>
    static Tensor Weighted(Tensor y)
    {
        var r = Tensor.FromArray(y.Backend, Rand(y.Size, 99), y.Shape);
        return Ops.Sum(Ops.Mul(y, r));
    }

    static double Weighted(double[] y)
    {
        var r = Rand(y.Length, 99);
        double s = 0;
        for (int i = 0; i < y.Length; i++) s += y[i] * r[i];
        return s;
    }

    static float[] F(double[] x) => x.Select(v => (float)v).ToArray();

    static IEnumerable<TestCaseData> ForBackends(params string[] names) =>
        from b in GradBackends from n in names select new TestCaseData(b, n).SetName($"{n} grad on {b}");

    static IEnumerable<TestCaseData> MatMulCases() => ForBackends("matmul", "matmul-transB");

    [TestCaseSource(nameof(MatMulCases))]
    public void MatMul(string backend, string kind)
    {
        bool tb = kind.EndsWith("transB");
        int m = 5, k = 7, n = 3;
        Check(backend, [[m, k], tb ? [n, k] : [k, n]], t => Weighted(Ops.MatMul(t[0], t[1], tb)), x =>
        {
            var y = new double[m * n];
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) for (int p = 0; p < k; p++)
                y[i * n + j] += x[0][i * k + p] * (tb ? x[1][j * k + p] : x[1][p * n + j]);
            return Weighted(y);
        });
    }

    static IEnumerable<TestCaseData> BinaryCases() => ForBackends("add", "sub", "mul", "add-bias", "add-relu", "add-relu-same-input");

    [TestCaseSource(nameof(BinaryCases))]
    public void Binary(string backend, string kind)
    {
        if (kind == "add-bias")
        {
            Check(backend, [[4, 6], [6]], t => Weighted(Ops.AddBias(t[0], t[1])),
                x => Weighted(Enumerable.Range(0, 24).Select(i => x[0][i] + x[1][i % 6]).ToArray()));
            return;
        }
        if (kind == "add-relu-same-input")
        {
            // Both operands are one tensor (an identity shortcut of a block's own input): the gradients add up.
            Check(backend, [[3, 5]], t => Weighted(Ops.AddRelu(t[0], t[0])), x => Weighted(x[0].Select(v => Math.Max(2 * v, 0)).ToArray()));
            return;
        }
        if (kind == "add-relu")
        {
            Check(backend, [[3, 5], [3, 5]], t => Weighted(Ops.AddRelu(t[0], t[1])), x => Weighted(x[0].Zip(x[1], (a, b) => Math.Max(a + b, 0)).ToArray()));
            return;
        }
        Func<Tensor, Tensor, Tensor> op = kind switch { "add" => Ops.Add, "sub" => Ops.Sub, _ => Ops.Mul };
        Func<double, double, double> r = kind switch { "add" => (a, b) => a + b, "sub" => (a, b) => a - b, _ => (a, b) => a * b };
        Check(backend, [[3, 5], [3, 5]], t => Weighted(op(t[0], t[1])), x => Weighted(x[0].Zip(x[1], r).ToArray()));
    }

    static IEnumerable<TestCaseData> UnaryCases() =>
        from b in GradBackends
        from op in new[] { UnaryOp.Relu, UnaryOp.Relu6, UnaryOp.Gelu, UnaryOp.Scale, UnaryOp.Neg, UnaryOp.Square, UnaryOp.Exp, UnaryOp.Log, UnaryOp.Sqrt, UnaryOp.Tanh, UnaryOp.Sigmoid }
        select new TestCaseData(b, op).SetName($"{op} grad on {b}");

    [TestCaseSource(nameof(UnaryCases))]
    public void Unary(string backend, UnaryOp op)
    {
        bool positive = op is UnaryOp.Log or UnaryOp.Sqrt;
        float scale = op == UnaryOp.Relu6 ? 8f : 3f;
        Check(backend, [[7, 5]], t => Weighted(Ops.Unary(op, t[0], 0.7f)),
            x => Weighted(x[0].Select(v => ReferenceOps.Unary(op, v, 0.7)).ToArray()),
            scale: positive ? 1f : scale, shift: positive ? 2f : 0f);
    }

    static IEnumerable<TestCaseData> ReductionCases() => ForBackends("sum", "mean");

    [TestCaseSource(nameof(ReductionCases))]
    public void Reduction(string backend, string kind)
    {
        bool mean = kind == "mean";
        Check(backend, [[4, 9]], t => Ops.Scale(Ops.Sum(Ops.Scale(t[0], 1.5f), mean), 2f), x => 2 * 1.5 * (mean ? x[0].Average() : x[0].Sum()));
    }

    static IEnumerable<TestCaseData> SoftmaxCases() => ForBackends("softmax", "log-softmax");

    [TestCaseSource(nameof(SoftmaxCases))]
    public void Softmax(string backend, string kind)
    {
        bool log = kind == "log-softmax";
        const int rows = 3, cols = 11;
        Check(backend, [[rows, cols]], t => Weighted(Ops.Softmax(t[0], 2f, log)), x =>
        {
            var z = F(x[0]);
            var y = new double[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                // float64 throughout: recompute from the double inputs, not the float copy
                var row = x[0].Skip(r * cols).Take(cols).Select(v => v / 2.0).ToArray();
                double max = row.Max(), lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
                for (int j = 0; j < cols; j++) y[r * cols + j] = log ? row[j] - lse : Math.Exp(row[j] - lse);
            }
            return Weighted(y);
        }, scale: 3f);
    }

    static double LsLossD(double[] z, int rows, int cols, int[] labels, double alpha)
    {
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            var row = z.Skip(r * cols).Take(cols).ToArray();
            double max = row.Max(), lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
            for (int j = 0; j < cols; j++) total -= ((j == labels[r] ? 1 - alpha : 0) + alpha / cols) * (row[j] - lse);
        }
        return total / rows;
    }

    static IEnumerable<TestCaseData> LossCases() => ForBackends("label-smoothing-ce", "kd-soft", "kd-mixed");

    [TestCaseSource(nameof(LossCases))]
    public void FusedLoss(string backend, string kind)
    {
        const int rows = 4, cols = 9;
        var be = Backends.Get(backend);
        int[] labels = [3, 0, 8, 5];
        using var lab = be.AllocateInt(rows);
        lab.Upload(labels);
        var teacher = Rand(rows * cols, 77, 4f);
        if (kind == "label-smoothing-ce")
        {
            Check(backend, [[rows, cols]], t => Ops.Scale(Ops.LabelSmoothingCrossEntropy(t[0], lab, 0.1f), 1.7f),
                x => 1.7 * LsLossD(x[0], rows, cols, labels, 0.1), scale: 3f);
            return;
        }
        float beta = kind == "kd-soft" ? 1f : 0.5f, temp = 2.5f, alpha = kind == "kd-soft" ? 0f : 0.1f;
        Check(backend, [[rows, cols]], t =>
        {
            var tt = Tensor.FromArray(be, teacher, [rows, cols]);
            return Ops.Scale(Ops.KdLoss(t[0], tt, lab, new KdConfig(temp, beta, alpha)), 1.3f);
        }, x =>
        {
            double kl = 0;
            for (int r = 0; r < rows; r++)
            {
                var s = x[0].Skip(r * cols).Take(cols).Select(v => v / temp).ToArray();
                var tr = teacher.Skip(r * cols).Take(cols).Select(v => (double)v / temp).ToArray();
                double ms = s.Max(), ls = ms + Math.Log(s.Sum(v => Math.Exp(v - ms)));
                double mt = tr.Max(), lt = mt + Math.Log(tr.Sum(v => Math.Exp(v - mt)));
                for (int j = 0; j < cols; j++) { double lpt = tr[j] - lt; kl += Math.Exp(lpt) * (lpt - (s[j] - ls)); }
            }
            kl /= rows;
            return 1.3 * (beta * temp * temp * kl + (1 - beta) * LsLossD(x[0], rows, cols, labels, alpha));
        }, scale: 3f);
    }
}
