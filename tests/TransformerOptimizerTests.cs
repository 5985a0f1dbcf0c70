using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Tests;

/// <summary>The optimiser pieces a Transformer needs: schedules against hand-computed values, global-norm clipping
/// against a float64 norm, and AdamW with beta2 = 0.98 against the float64 reference update.</summary>
[TestFixture]
public class TransformerOptimizerTests
{
    [Test]
    public void InverseSqrtWarmsUpLinearlyThenDecaysWithTheSquareRoot()
    {
        Assert.That(LearningRateSchedules.InverseSqrt(1, 4000, 7e-4f), Is.EqualTo(7e-4 / 4000).Within(1e-12));
        Assert.That(LearningRateSchedules.InverseSqrt(2000, 4000, 7e-4f), Is.EqualTo(3.5e-4).Within(1e-9));
        Assert.That(LearningRateSchedules.InverseSqrt(4000, 4000, 7e-4f), Is.EqualTo(7e-4).Within(1e-9));
        Assert.That(LearningRateSchedules.InverseSqrt(16000, 4000, 7e-4f), Is.EqualTo(3.5e-4).Within(1e-9));   // sqrt(4000 / 16000) = 1/2
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateSchedules.InverseSqrt(0, 10, 1f));
    }

    [Test]
    public void WarmupCosineReachesPeakThenFloor()
    {
        Assert.That(LearningRateSchedules.WarmupCosine(5, 10, 110, 1f), Is.EqualTo(0.5).Within(1e-7));
        Assert.That(LearningRateSchedules.WarmupCosine(10, 10, 110, 1f), Is.EqualTo(1.0).Within(1e-7));
        Assert.That(LearningRateSchedules.WarmupCosine(60, 10, 110, 1f, 0.1f), Is.EqualTo(0.55).Within(1e-6));   // half-way: the mean of peak and floor
        Assert.That(LearningRateSchedules.WarmupCosine(110, 10, 110, 1f, 0.1f), Is.EqualTo(0.1).Within(1e-6));
        Assert.That(LearningRateSchedules.WarmupCosine(500, 10, 110, 1f, 0.1f), Is.EqualTo(0.1).Within(1e-6));
    }

    [TestCase("cpu-v512-2t")]
    [TestCase("ilgpu-cpu-g64")]
    public void ClipGlobalNormScalesAllGradientsToTheLimit(string backend)
    {
        var be = Backends.Get(backend);
        var grads = new[] { new float[] { 3f, -4f, 1f }, new float[] { 2f, 0.5f } };
        var ps = grads.Select(g => Tensor.FromArray(be, new float[g.Length], [g.Length], requiresGrad: true)).ToArray();
        for (int i = 0; i < ps.Length; i++) SetGrad(ps[i], grads[i]);
        double expected = Math.Sqrt(grads.SelectMany(g => g).Sum(v => (double)v * v));
        double norm = GradientClipping.ClipGlobalNorm(ps, 1f);
        Assert.That(norm, Is.EqualTo(expected).Within(1e-5));
        double after = Math.Sqrt(ps.SelectMany(p => p.Grad!.ToArray().Take(p.Size)).Sum(v => (double)v * v));
        Assert.That(after, Is.EqualTo(1.0).Within(1e-5));
        Assert.That(ps[0].Grad!.ToArray()[0] / ps[0].Grad!.ToArray()[1], Is.EqualTo(3.0 / -4.0).Within(1e-6), "direction kept");
        // Under the limit nothing changes.
        double again = GradientClipping.ClipGlobalNorm(ps, 10f);
        Assert.That(again, Is.EqualTo(1.0).Within(1e-5));
        Assert.That(Math.Sqrt(ps.SelectMany(p => p.Grad!.ToArray().Take(p.Size)).Sum(v => (double)v * v)), Is.EqualTo(1.0).Within(1e-5));
    }

    /// <summary>Gives p the gradient g by back-propagating sum(p * g).</summary>
    static void SetGrad(Tensor p, float[] g)
    {
        var weights = Tensor.FromArray(p.Backend, g, [g.Length]);
        Tape.Backward(Ops.Sum(Ops.Mul(p, weights)));
        Tape.Current.Reset();
    }

    [Test]
    public void AdamWithBeta2OfTransformersMatchesTheReference()
    {
        var be = Backends.Get("cpu-v512-2t");
        var cfg = new AdamWConfig(5e-4f, 0.9f, 0.98f, 1e-9f, 0.0001f);
        var p0 = new float[] { 0.5f, -1f, 2f, 0f };
        var g = new float[] { 0.1f, -0.3f, 0.02f, 1f };
        var p = Tensor.FromArray(be, (float[])p0.Clone(), [4], requiresGrad: true);
        using var opt = new AdamW([p], cfg);
        var rp = p0.Select(v => (double)v).ToArray(); var rm = new double[4]; var rv = new double[4];
        for (int step = 1; step <= 3; step++)
        {
            opt.ZeroGrad();
            SetGrad(p, g);
            opt.Step();
            LsKd.Kernels.Reference.ReferenceOps.AdamW(rp, g, rm, rv, cfg, step);
        }
        var got = p.ToArray();
        for (int i = 0; i < 4; i++) Assert.That(got[i], Is.EqualTo(rp[i]).Within(1e-6), $"parameter {i}");
    }
}
