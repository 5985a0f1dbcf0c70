using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Tests;

/// <summary>The fused training-step ops against their unfused compositions on the same backend: the fusions must
/// change the memory traffic, not the result.</summary>
[TestFixture]
public class FusionTests
{
    static IEnumerable<TestCaseData> Cases() =>
        from b in Backends.Names
        from act in new[] { NormActivation.Relu, NormActivation.Relu6 }
        select new TestCaseData(b, act).SetName($"batch-norm backward mask from x ({act}) on {b}");

    static DeviceBuffer<float> Up(IBackend be, float[] v) { var d = be.Allocate(v.Length); d.Upload(v); return d; }

    [TestCaseSource(nameof(Cases))]
    public void BatchNormBackwardMaskEqualsTheForwardsClamp(string backendName, NormActivation act)
    {
        var be = Backends.Get(backendName);
        var spec = new BatchNormSpec(4, 3, 50, Activation: act);
        int n = (int)spec.Size;
        var rng = new Random(5);
        // Quantised inputs put many pre-activations on or next to 0 (and, with large gammas, 6): the boundary cases.
        var x = Enumerable.Range(0, n).Select(_ => rng.Next(-8, 9) / 8f).ToArray();
        var dy = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() + 0.5f).ToArray();
        float[] gamma = act == NormActivation.Relu6 ? [9f, 7f, 11f] : [1f, 0.5f, 2f], beta = [0.25f, -0.125f, 0f];
        using var bx = Up(be, x); using var bdy = Up(be, dy); using var bg = Up(be, gamma); using var bb = Up(be, beta);
        using var rm = Up(be, new float[3]); using var rv = Up(be, [1f, 1f, 1f]);
        using var y = be.Allocate(n); using var mean = be.Allocate(3); using var inv = be.Allocate(3);
        be.BatchNorm(spec, bx, bg, bb, y, mean, inv, rm, rv, training: true);
        var yh = y.ToArray();
        int clamped = yh.Count(v => !(v > 0f && v < spec.Cap));
        Assert.That(clamped, Is.GreaterThan(n / 10), "the data must exercise the mask");

        using var fused = be.Allocate(n); using var dg1 = be.Allocate(3); using var db1 = be.Allocate(3);
        be.BatchNormBackward(spec, bx, bdy, bg, mean, inv, fused, dg1, db1, training: true, accumulate: false, beta: bb);
        // Unfused: dy masked by the forward's own output, then the plain backward.
        var masked = dy.Select((g, i) => yh[i] > 0f && yh[i] < spec.Cap ? g : 0f).ToArray();
        using var bm = Up(be, masked); using var plain = be.Allocate(n); using var dg2 = be.Allocate(3); using var db2 = be.Allocate(3);
        be.BatchNormBackward(spec with { Activation = NormActivation.None }, bx, bm, bg, mean, inv, plain, dg2, db2, training: true, accumulate: false);
        Assert.That(fused.ToArray(), Is.EqualTo(plain.ToArray()).Within(1e-5f));
        Assert.That(dg1.ToArray(), Is.EqualTo(dg2.ToArray()).Within(1e-4f));
        Assert.That(db1.ToArray(), Is.EqualTo(db2.ToArray()).Within(1e-4f));
    }

    [TestCaseSource(typeof(Backends), nameof(Backends.Names))]
    public void AddReluBackwardEqualsTwoReluBackwards(string backendName)
    {
        var be = Backends.Get(backendName);
        int n = 1000;
        var rng = new Random(3);
        float[] Rand() => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() * 2f - 1f).ToArray();
        var a = Rand(); var b = Rand(); var dy = Rand(); var ga0 = Rand(); var gb0 = Rand();
        using var ba = Up(be, a); using var bb = Up(be, b); using var y = be.Allocate(n); using var bdy = Up(be, dy);
        be.Binary(BinaryOp.AddRelu, ba, bb, y, n, n);
        Assert.That(y.ToArray(), Is.EqualTo(a.Zip(b, (u, v) => Math.Max(u + v, 0f)).ToArray()));
        using var ga = Up(be, ga0); using var gb = Up(be, gb0);
        be.AddReluBackward(y, bdy, ga, gb, n, accumulateA: true, accumulateB: false);
        using var ea = Up(be, ga0); using var eb = be.Allocate(n);
        be.UnaryBackward(UnaryOp.Relu, y, bdy, ea, n, 0f, accumulate: true);
        be.UnaryBackward(UnaryOp.Relu, y, bdy, eb, n, 0f, accumulate: false);
        Assert.That(ga.ToArray(), Is.EqualTo(ea.ToArray()));
        Assert.That(gb.ToArray(), Is.EqualTo(eb.ToArray()));
    }

    static IEnumerable<TestCaseData> ResidualCases() =>
        from b in Backends.Names
        from training in new[] { true, false }
        select new TestCaseData(b, training).SetName($"batch norm + add-relu equals batch norm then add-relu ({(training ? "train" : "eval")}) on {b}");

    /// <summary>The fused residual end gives the composed ops' output, running statistics and gradients (the same
    /// float operations: equal to rounding), with the residual gradient written fresh and added to.</summary>
    [TestCaseSource(nameof(ResidualCases))]
    public void BatchNormAddReluEqualsTheComposition(string backendName, bool training)
    {
        var be = Backends.Get(backendName);
        var spec = new BatchNormSpec(4, 3, 50);
        int n = (int)spec.Size;
        var rng = new Random(9);
        float[] Rand(float scale) => Enumerable.Range(0, n).Select(_ => ((float)rng.NextDouble() * 2f - 1f) * scale).ToArray();
        var x = Rand(2f); var r = Rand(1f); var dy = Rand(1f); var before = Rand(1f);
        float[] gamma = [1f, 0.5f, 2f], beta = [0.25f, -0.125f, 0f], rvInit = [1f, 0.5f, 2f];
        using var bx = Up(be, x); using var br = Up(be, r); using var bdy = Up(be, dy); using var bg = Up(be, gamma); using var bb = Up(be, beta);
        using var rm1 = Up(be, new float[3]); using var rv1 = Up(be, rvInit); using var rm2 = Up(be, new float[3]); using var rv2 = Up(be, rvInit);
        using var y1 = be.Allocate(n); using var m1 = be.Allocate(3); using var i1 = be.Allocate(3);
        be.BatchNormAddRelu(spec, bx, bg, bb, br, y1, m1, i1, rm1, rv1, training);
        using var h = be.Allocate(n); using var y2 = be.Allocate(n); using var m2 = be.Allocate(3); using var i2 = be.Allocate(3);
        be.BatchNorm(spec, bx, bg, bb, h, m2, i2, rm2, rv2, training);
        be.Binary(BinaryOp.AddRelu, h, br, y2, n, n);
        var yh = y1.ToArray();
        Assert.That(yh.Count(v => v == 0f), Is.InRange(n / 10, n - n / 10), "the data must exercise the mask");
        Assert.That(yh, Is.EqualTo(y2.ToArray()).Within(1e-6f));
        Assert.That(rv1.ToArray(), Is.EqualTo(rv2.ToArray()).Within(1e-6f));
        foreach (bool accumulate in new[] { false, true })
        {
            using var dx1 = Up(be, before); using var dr1 = Up(be, before); using var dg1 = be.Allocate(3); using var db1 = be.Allocate(3);
            be.BatchNormAddReluBackward(spec, bx, y1, bdy, bg, m1, i1, dx1, dr1, dg1, db1, training, accumulate, accumulate);
            using var dh = be.Allocate(n); using var dx2 = Up(be, before); using var dr2 = Up(be, before); using var dg2 = be.Allocate(3); using var db2 = be.Allocate(3);
            be.AddReluBackward(y2, bdy, dh, dr2, n, accumulateA: false, accumulateB: accumulate);
            be.BatchNormBackward(spec, bx, dh, bg, m2, i2, dx2, dg2, db2, training, accumulate);
            Assert.That(dx1.ToArray(), Is.EqualTo(dx2.ToArray()).Within(1e-5f), $"dx, accumulate {accumulate}");
            Assert.That(dr1.ToArray(), Is.EqualTo(dr2.ToArray()).Within(1e-6f), $"dResidual, accumulate {accumulate}");
            Assert.That(dg1.ToArray(), Is.EqualTo(dg2.ToArray()).Within(1e-4f));
            Assert.That(db1.ToArray(), Is.EqualTo(db2.ToArray()).Within(1e-4f));
        }
    }

    static IEnumerable<TestCaseData> ConvBnCases() =>
        from b in Backends.Names
        from k in new[] { (16, 28), (64, 7), (8, 5) }
        select new TestCaseData(b, k.Item1, k.Item2).SetName($"conv statistics feed batch norm ({k.Item1} ch at {k.Item2}x{k.Item2}) on {b}");

    /// <summary>Batch norm in training after a convolution that formed the statistics in its output pass gives the
    /// output and running statistics of batch norm computing them itself (16 and 64 channels: the grid and lanes
    /// paths; 8 channels: the fallback pass over the output).</summary>
    [TestCaseSource(nameof(ConvBnCases))]
    public void ConvStatisticsFeedBatchNorm(string backendName, int channels, int size)
    {
        var be = Backends.Get(backendName);
        if (Backends.IsEmulator(backendName) && channels * size * size > 4000) { channels = 8; size = 5; }
        int n = 3;
        var rng = new Random(9);
        float[] Rand(int len, float shift = 0f) => Enumerable.Range(0, len).Select(_ => (float)rng.NextDouble() - 0.5f + shift).ToArray();
        var xs = Rand(n * channels * size * size, 2f); var ws = Rand(channels * channels * 9);
        var results = new List<(float[] Y, float[] Rm, float[] Rv)>();
        foreach (bool fused in new[] { true, false })
        {
            var x = Tensor.FromArray(be, xs, [n, channels, size, size]);
            var w = Tensor.FromArray(be, ws, [channels, channels, 3, 3]);
            var gamma = Tensor.FromArray(be, Enumerable.Repeat(1.5f, channels).ToArray(), [channels]);
            var beta = Tensor.FromArray(be, Enumerable.Repeat(0.25f, channels).ToArray(), [channels]);
            var rm = Tensor.FromArray(be, new float[channels], [channels]);
            var rv = Tensor.FromArray(be, Enumerable.Repeat(1f, channels).ToArray(), [channels]);
            var h = Ops.Conv2d(x, w, 1, 1, batchStats: fused);
            var y = Ops.BatchNorm(h, gamma, beta, rm, rv, training: true, activation: NormActivation.Relu);
            results.Add((y.ToArray(), rm.ToArray(), rv.ToArray()));
            Tape.Current.Reset();
        }
        Assert.That(results[0].Y, Is.EqualTo(results[1].Y).Within(2e-5f));
        Assert.That(results[0].Rm, Is.EqualTo(results[1].Rm).Within(1e-5f));
        Assert.That(results[0].Rv, Is.EqualTo(results[1].Rv).Within(1e-4f));
    }
}
