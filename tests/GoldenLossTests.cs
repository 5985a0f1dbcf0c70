using System.Text.Json;
using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Tests;

/// <summary>Fused losses against golden values computed once with PyTorch in float64
/// (tests/Fixtures/make_golden_losses.py wrote tests/Fixtures/golden_losses.json). The tests read only the
/// JSON. Tolerance on losses, gradients and probabilities: |got - expected| &lt;= 2e-6 + 2e-5 |expected|, plus, for
/// the KD loss value only, 1e-7 beta T^2: at large T every exponential is close to 1, where a float32 ulp is
/// 6e-8 to 1.2e-7, so the KL divergence has an absolute floor of about one ulp, and the loss multiplies it by
/// T^2 (4096 at T = 64). For the same reason the KD gradient, beta T (p_s - p_t) / B, gets 1e-7 beta T / B.</summary>
[TestFixture]
public class GoldenLossTests
{
    const double Atol = 2e-6, Rtol = 2e-5;

    sealed record Case(int Rows, int Cols, float[] Student, float[] Teacher, int[] Labels, JsonElement Json);

    static readonly Lazy<Case[]> s_cases = new(() =>
    {
        string path = Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "golden_losses.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("rows").GetInt32(), c.GetProperty("cols").GetInt32(),
            Floats(c.GetProperty("student")), Floats(c.GetProperty("teacher")),
            c.GetProperty("labels").EnumerateArray().Select(x => x.GetInt32()).ToArray(), c.Clone())).ToArray();
    });

    static float[] Floats(JsonElement e) => e.EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();
    static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    static IEnumerable<string> BackendNames() => Backends.Names;

    static void AssertClose(string what, IReadOnlyList<float> got, double[] expected, double extraAtol = 0)
    {
        Assert.That(got, Has.Count.EqualTo(expected.Length), what);
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(got[i] - expected[i]);
            if (!(err <= Atol + extraAtol + Rtol * Math.Abs(expected[i])))
                Assert.Fail($"{what}: index {i} got {got[i]:R}, expected {expected[i]:R} (error {err:E2})");
        }
    }

    [Test]
    public void FixtureHasEveryRequiredSetting()
    {
        var kd = s_cases.Value.SelectMany(c => c.Json.GetProperty("kd").EnumerateArray()).ToArray();
        Assert.That(kd.Select(k => k.GetProperty("temperature").GetDouble()).Distinct(), Is.EquivalentTo(new[] { 0.5, 1, 2, 4, 64 }));
        Assert.That(kd.Select(k => k.GetProperty("beta").GetDouble()).Distinct(), Is.EquivalentTo(new[] { 0, 0.5, 1 }));
        Assert.That(s_cases.Value.SelectMany(c => c.Json.GetProperty("ls").EnumerateArray()).Select(k => k.GetProperty("alpha").GetDouble()).Distinct(),
            Is.EquivalentTo(new[] { 0, 0.1, 0.2 }));
    }

    [TestCaseSource(nameof(BackendNames))]
    public void LabelSmoothingMatchesPyTorch(string backend)
    {
        var be = Backends.Get(backend);
        foreach (var c in s_cases.Value)
            foreach (var ls in c.Json.GetProperty("ls").EnumerateArray())
            {
                float alpha = (float)ls.GetProperty("alpha").GetDouble();
                using var scope = new TapeScope();
                var z = scope.Own(Tensor.FromArray(be, c.Student, [c.Rows, c.Cols], requiresGrad: true));
                using var labels = Labels(be, c.Labels);
                var loss = Ops.LabelSmoothingCrossEntropy(z, labels, alpha);
                Tape.Backward(loss);
                string what = $"LS-CE ({c.Rows}x{c.Cols}, alpha {alpha})";
                AssertClose(what + " loss", loss.ToArray(), [ls.GetProperty("loss").GetDouble()]);
                AssertClose(what + " grad", z.GradToArray(), Doubles(ls.GetProperty("grad")));
            }
    }

    [TestCaseSource(nameof(BackendNames))]
    public void KdLossMatchesPyTorch(string backend)
    {
        var be = Backends.Get(backend);
        foreach (var c in s_cases.Value)
            foreach (var kd in c.Json.GetProperty("kd").EnumerateArray())
            {
                var cfg = new KdConfig((float)kd.GetProperty("temperature").GetDouble(), (float)kd.GetProperty("beta").GetDouble(),
                    (float)kd.GetProperty("alpha").GetDouble());
                using var scope = new TapeScope();
                var zs = scope.Own(Tensor.FromArray(be, c.Student, [c.Rows, c.Cols], requiresGrad: true));
                var zt = scope.Own(Tensor.FromArray(be, c.Teacher, [c.Rows, c.Cols]));
                using var labels = Labels(be, c.Labels);
                var loss = Ops.KdLoss(zs, zt, labels, cfg);
                Tape.Backward(loss);
                string what = $"KD ({c.Rows}x{c.Cols}, {cfg})";
                AssertClose(what + " loss", loss.ToArray(), [kd.GetProperty("loss").GetDouble()], 1e-7 * cfg.Beta * cfg.Temperature * cfg.Temperature);
                AssertClose(what + " grad", zs.GradToArray(), Doubles(kd.GetProperty("grad")), 1e-7 * cfg.Beta * cfg.Temperature / c.Rows);
            }
    }

    [TestCaseSource(nameof(BackendNames))]
    public void SoftmaxAndEntropyMatchPyTorch(string backend)
    {
        var be = Backends.Get(backend);
        foreach (var c in s_cases.Value)
            foreach (var sm in c.Json.GetProperty("softmax").EnumerateArray())
            {
                float t = (float)sm.GetProperty("temperature").GetDouble();
                int n = c.Rows * c.Cols;
                using var x = be.Allocate(n);
                using var y = be.Allocate(n);
                using var h = be.Allocate(c.Rows);
                x.Upload(c.Student);
                string what = $"({c.Rows}x{c.Cols}, T {t})";
                be.Softmax(x, y, c.Rows, c.Cols, t, log: false);
                AssertClose("softmax " + what, y.ToArray(), Doubles(sm.GetProperty("softmax")));
                be.Softmax(x, y, c.Rows, c.Cols, t, log: true);
                AssertClose("log-softmax " + what, y.ToArray(), Doubles(sm.GetProperty("log_softmax")));
                be.Entropy(x, h, c.Rows, c.Cols, t);
                AssertClose("entropy " + what, h.ToArray(), Doubles(sm.GetProperty("entropy")));
            }
    }

    static DeviceBuffer<int> Labels(IBackend be, int[] labels)
    {
        var b = be.AllocateInt(labels.Length);
        b.Upload(labels);
        return b;
    }

    /// <summary>Resets the tape after each case and frees the case's own tensors.</summary>
    sealed class TapeScope : IDisposable
    {
        readonly List<Tensor> _owned = [];
        public Tensor Own(Tensor t) { _owned.Add(t); return t; }
        public void Dispose()
        {
            Tape.Current.Reset();
            foreach (var t in _owned) { t.Buffer.Dispose(); t.Grad?.Dispose(); }
        }
    }
}
