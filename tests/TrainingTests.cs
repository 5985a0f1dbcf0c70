using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Nets;

namespace LsKd.Tests;

/// <summary>End to end: an MLP learns a synthetic separable problem on every backend with SGD and AdamW; a
/// seeded CPU run is bit-for-bit repeatable; the buffer pool stops growing after the first step.</summary>
[TestFixture]
public class TrainingTests
{
    const int Classes = 4, Dim = 8;

    /// <summary>Gaussian blobs around well-separated centres.</summary>
    static (float[] X, int[] Y) Blobs(int n, int seed)
    {
        var rng = new Random(seed);
        var centres = new float[Classes, Dim];
        var crng = new Random(1234);
        for (int c = 0; c < Classes; c++) for (int d = 0; d < Dim; d++) centres[c, d] = (float)(crng.NextDouble() * 6 - 3);
        var x = new float[n * Dim];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % Classes;
            for (int d = 0; d < Dim; d++)
            {
                double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                x[i * Dim + d] = centres[y[i], d] + 0.5f * (float)g;
            }
        }
        return (x, y);
    }

    static List<float> Train(IBackend be, string optimizer, int steps, out double accuracy, out BufferPool pool, int seed = 7)
    {
        var (xs, ys) = Blobs(256, seed);
        var model = new Mlp(be, [Dim, 32, Classes], seed: 42);
        using Optimizer opt = optimizer == "sgd"
            ? new Sgd(model.Parameters(), new SgdConfig(0.1f, 0.9f, 1e-4f, Nesterov: true))
            : new AdamW(model.Parameters(), new AdamWConfig(0.03f, WeightDecay: 0.01f));
        var x = Tensor.FromArray(be, xs, [256, Dim]);
        using var labels = be.AllocateInt(256);
        labels.Upload(ys);
        var tape = Tape.Current;
        pool = tape.Pool;
        var losses = new List<float>();
        for (int s = 0; s < steps; s++)
        {
            opt.ZeroGrad();
            var loss = Ops.LabelSmoothingCrossEntropy(model.Forward(x), labels, 0f);
            Tape.Backward(loss);
            opt.Step();
            losses.Add(loss.ToArray()[0]);
            tape.Reset();
        }
        using (Tape.NoGrad())
        {
            var logits = model.Forward(x).ToArray();
            int correct = 0;
            for (int i = 0; i < 256; i++)
            {
                int best = 0;
                for (int c = 1; c < Classes; c++) if (logits[i * Classes + c] > logits[i * Classes + best]) best = c;
                if (best == ys[i]) correct++;
            }
            accuracy = correct / 256.0;
            tape.Reset();
        }
        return losses;
    }

    static IEnumerable<TestCaseData> TrainCases() =>
        // The ILGPU emulator runs one simulated group size here (both are covered by the kernel tests): it is slow.
        from b in Backends.Names.Where(n => n != "ilgpu-cpu-g64") from o in new[] { "sgd", "adamw" } select new TestCaseData(b, o).SetName($"MLP learns blobs with {o} on {b}");

    [TestCaseSource(nameof(TrainCases))]
    public void MlpReaches99Percent(string backend, string optimizer)
    {
        var losses = Train(Backends.Get(backend), optimizer, 30, out double acc, out _);
        Assert.That(losses.All(float.IsFinite), Is.True, "a loss was not finite");
        Assert.That(losses[^1], Is.LessThan(losses[0] * 0.5f), $"loss did not fall: {losses[0]} -> {losses[^1]}");
        Assert.That(acc, Is.GreaterThanOrEqualTo(0.99), $"training accuracy {acc:P1}");
    }

    [Test]
    public void SeededCpuTrainingIsBitIdentical()
    {
        var a = Train(new CpuBackend(2), "sgd", 20, out _, out _);
        var b = Train(new CpuBackend(2), "sgd", 20, out _, out _);
        Assert.That(b.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(a.Select(BitConverter.SingleToInt32Bits)));
        Assert.That(a.Distinct().Count(), Is.GreaterThan(10), "losses should change over the steps");
    }

    /// <summary>On a thread of its own: the tape (and its pool) is per thread, and the pool an earlier test on this
    /// worker left behind may sit at its free-element cap, where returned buffers are released instead of kept.</summary>
    [Test]
    public void TrainingLoopDoesNotGrowDeviceMemory()
    {
        long after3 = -1, after10 = -1, rented = -1;
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try
            {
                var be = new CpuBackend(1);
                Train(be, "adamw", 3, out _, out var pool);
                after3 = pool.Allocated;
                Train(be, "adamw", 10, out _, out pool);
                (after10, rented) = (pool.Allocated, pool.Rented);
            }
            catch (Exception e) { failure = e; }
        });
        worker.Start();
        worker.Join();
        if (failure != null) throw failure;
        Assert.That(after3, Is.GreaterThan(0), "the worker thread did not train");
        Assert.That(after10, Is.EqualTo(after3), "later steps must reuse pooled buffers");
        Assert.That(rented, Is.GreaterThan(after10));
    }

    [Test]
    public void NoGradScopeRecordsNothing()
    {
        var be = new CpuBackend(1);
        var w = Tensor.FromArray(be, [1f, 2f], [2], requiresGrad: true);
        using (Tape.NoGrad())
        {
            var y = Ops.Scale(w, 3f);
            Assert.That(y.RequiresGrad, Is.False);
            Assert.That(y.ToArray(), Is.EqualTo(new[] { 3f, 6f }));
        }
        Tape.Current.Reset();
    }

    [Test]
    public void GradientsAccumulateAcrossUses()
    {
        var be = new CpuBackend(1);
        var w = Tensor.FromArray(be, [1f, -2f, 3f], [3], requiresGrad: true);
        // loss = sum(w) + sum(2 w) => dw = 3 everywhere
        var loss = Ops.Add(Ops.Sum(w), Ops.Sum(Ops.Scale(w, 2f)));
        Tape.Backward(loss);
        Assert.That(w.GradToArray(), Is.EqualTo(new[] { 3f, 3f, 3f }));
        Tape.Current.Reset();
    }
}
