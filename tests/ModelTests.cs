using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Nets;

namespace LsKd.Tests;

/// <summary>Models, checkpoints and layer-level semantics.</summary>
[TestFixture]
public class ModelTests
{
    static IBackend Cpu => Backends.Get("cpu-v512-2t");

    static Tensor Images(IBackend be, int n, ulong seed)
    {
        var x = Tensor.Create(be, [n, 1, 28, 28]);
        Init.Normal(x, seed, 0f, 1f);
        return x;
    }

    static float[] Logits(Classifier model, Tensor x)
    {
        using (Tape.NoGrad())
        {
            var y = model.Forward(x).ToArray();
            Tape.Current.Reset();
            return y;
        }
    }

    /// <summary>Parameter counts of the same architectures in PyTorch (bench/peers/train_torch.py printed them).</summary>
    [TestCase("resnet8", 77_754)]
    [TestCase("resnet20", 272_186)]
    [TestCase("mobilenetv2", 224_522)]
    public void ParameterCountsMatchPyTorch(string name, long expected) =>
        Assert.That(Models.Create(name, Cpu, 1).ParameterCount, Is.EqualTo(expected));

    [Test]
    public void FlopCountIsTheSumOfConvolutionsAndTheClassifier()
    {
        // ResNet-8 on 28x28: stem, one block per stage (two stride-2 stages with 1x1 projections), classifier.
        long conv(int hw, int cin, int cout, int k) => 2L * hw * hw * cout * cin * k * k;
        long expected = conv(28, 1, 16, 3) + 2 * conv(28, 16, 16, 3)
                        + conv(14, 16, 32, 3) + conv(14, 32, 32, 3) + conv(14, 16, 32, 1)
                        + conv(7, 32, 64, 3) + conv(7, 64, 64, 3) + conv(7, 32, 64, 1) + 2 * 64 * 10;
        Assert.That(Models.Create("resnet8", Cpu, 1).ForwardFlops(Cpu, [1, 28, 28]), Is.EqualTo(expected));
    }

    [TestCase("resnet8", 64)]
    [TestCase("mobilenetv2", 256)]
    public void ExposesPenultimateFeaturesAndFinalLayer(string name, int features)
    {
        var model = Models.Create(name, Cpu, 1);
        model.Eval();
        var x = Images(Cpu, 3, 2);
        using (Tape.NoGrad())
        {
            var f = model.Features(x);
            Assert.That(f.Shape, Is.EqualTo(new[] { 3, features }));
            Assert.That(model.Head.Weight.Shape, Is.EqualTo(new[] { 10, features }));
            Assert.That(model.Head.Bias!.Shape, Is.EqualTo(new[] { 10 }));
            // The logits are exactly the final layer applied to the features.
            var logits = model.Forward(x).ToArray();
            var fv = f.ToArray(); var w = model.Head.Weight.ToArray(); var b = model.Head.Bias.ToArray();
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 10; k++)
                {
                    double z = b[k];
                    for (int j = 0; j < features; j++) z += (double)fv[i * features + j] * w[k * features + j];
                    Assert.That(logits[i * 10 + k], Is.EqualTo(z).Within(1e-4 + 1e-4 * Math.Abs(z)));
                }
        }
        Tape.Current.Reset();
    }

    [Test]
    public void BatchNormUsesBatchStatisticsInTrainingAndRunningOnesInEvaluation()
    {
        var be = Cpu;
        var bn = new BatchNorm2d(be, "bn", 2);
        var data = Enumerable.Range(0, 2 * 2 * 3).Select(i => (float)(i % 5) + (i >= 6 ? 10f : 0f)).ToArray();
        var x = Tensor.FromArray(be, data, [2, 2, 3]);
        // Channel c holds rows n = 0, 1 of three values each.
        double Mean(int c) => new[] { 0, 1 }.SelectMany(n => data.Skip((n * 2 + c) * 3).Take(3)).Average(v => (double)v);
        double Var(int c) { double m = Mean(c); return new[] { 0, 1 }.SelectMany(n => data.Skip((n * 2 + c) * 3).Take(3)).Sum(v => (v - m) * (v - m)); }
        using (Tape.NoGrad())
        {
            var y = bn.Forward(x).ToArray();
            for (int c = 0; c < 2; c++)
            {
                Assert.That(bn.RunningMean.ToArray()[c], Is.EqualTo(0.1 * Mean(c)).Within(1e-5), "running mean after one step");
                Assert.That(bn.RunningVar.ToArray()[c], Is.EqualTo(0.9 + 0.1 * Var(c) / 5).Within(1e-5), "running variance (unbiased)");
                var channel = new[] { 0, 1 }.SelectMany(n => y.Skip((n * 2 + c) * 3).Take(3)).ToArray();
                Assert.That(channel.Average(), Is.EqualTo(0).Within(1e-5), "training output is centred");
            }
            bn.Eval();
            var e = bn.Forward(x).ToArray();
            var rm = bn.RunningMean.ToArray(); var rv = bn.RunningVar.ToArray();
            for (int i = 0; i < data.Length; i++)
            {
                int c = i / 3 % 2;
                Assert.That(e[i], Is.EqualTo((data[i] - rm[c]) / Math.Sqrt(rv[c] + 1e-5)).Within(1e-4), "evaluation uses running statistics");
            }
        }
        Tape.Current.Reset();
    }

    [TestCase("resnet8")]
    [TestCase("mobilenetv2")]
    public void CheckpointRoundTripGivesBitIdenticalOutputs(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "lskd-ckpt-" + Guid.NewGuid().ToString("N"));
        try
        {
            var a = Models.Create(name, Cpu, 7);
            var x = Images(Cpu, 4, 3);
            // One training step so batch-norm buffers differ from their initial values.
            var labels = Cpu.AllocateInt(4); labels.Upload([1, 2, 3, 4]);
            Tape.Backward(Ops.LabelSmoothingCrossEntropy(a.Forward(x), labels, 0.1f));
            Tape.Current.Reset();
            a.Eval();
            string path = Path.Combine(dir, "model.safetensors");
            Checkpoint.Save(a, path, new Dictionary<string, string> { ["note"] = "test" });
            var b = Models.Create(name, Cpu, 99);
            b.Eval();
            var meta = Checkpoint.Load(b, path);
            Assert.That(meta["model"], Is.EqualTo(a.ModelName));
            Assert.That(meta["note"], Is.EqualTo("test"));
            Assert.That(Logits(b, x), Is.EqualTo(Logits(a, x)));
            Assert.That(Directory.GetFiles(dir), Has.Length.EqualTo(1), "no temporary file is left behind");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Test]
    public void BadCheckpointsFailWithTheFileAndTensorNamed()
    {
        string dir = Path.Combine(Path.GetTempPath(), "lskd-bad-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var model = Models.Create("resnet8", Cpu, 1);
            string good = Path.Combine(dir, "good.safetensors");
            Checkpoint.Save(model, good);
            var bytes = File.ReadAllBytes(good);

            string truncated = Path.Combine(dir, "truncated.safetensors");
            File.WriteAllBytes(truncated, bytes[..(bytes.Length - 100)]);
            var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(Models.Create("resnet8", Cpu, 1), truncated))!;
            Assert.That(e.Message, Does.Contain(truncated).And.Contain("tensor '"));

            string corrupt = Path.Combine(dir, "corrupt.safetensors");
            var flipped = (byte[])bytes.Clone(); flipped[^10] ^= 0x40;
            File.WriteAllBytes(corrupt, flipped);
            e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(Models.Create("resnet8", Cpu, 1), corrupt))!;
            Assert.That(e.Message, Does.Contain(corrupt).And.Contain("SHA-256"));

            string garbage = Path.Combine(dir, "garbage.safetensors");
            File.WriteAllBytes(garbage, [1, 2, 3]);
            Assert.That(() => Checkpoint.Load(model, garbage), Throws.TypeOf<CheckpointException>().With.Message.Contains(garbage));

            e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(Models.Create("mobilenetv2", Cpu, 1), good))!;
            Assert.That(e.Message, Does.Contain("resnet8").And.Contain("mobilenetv2"));

            e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(Models.Create("resnet8", Cpu, 1, width: 2f), good))!;
            Assert.That(e.Message, Does.Contain("tensor 'stem.weight'").And.Contain("[16, 1, 3, 3]").And.Contain("[32, 1, 3, 3]"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void BadLayerInputsNameTheLayerAndShapes()
    {
        var be = Cpu;
        var conv = new Conv2d(be, "stage1.0.conv1", 16, 16, 3, 1, 1, 1);
        var x = Tensor.Create(be, [2, 8, 10, 10]);
        var e = Assert.Throws<ArgumentException>(() => conv.Forward(x))!;
        Assert.That(e.Message, Does.Contain("stage1.0.conv1").And.Contain("16 channels").And.Contain("[2, 8, 10, 10]"));
        var big = new Conv2d(be, "big", 8, 8, 5, 1, 0, 1);
        var small = Tensor.Create(be, [1, 8, 3, 3]);
        e = Assert.Throws<ArgumentException>(() => big.Forward(small))!;
        Assert.That(e.Message, Does.Contain("big").And.Contain("3x3").And.Contain("5x5"));
        e = Assert.Throws<ArgumentException>(() => Models.Create("resnet21", be, 1))!;
        Assert.That(e.Message, Does.Contain("resnet21").And.Contain("resnet20"));
        Tape.Current.Reset();
    }

    [Test]
    public void IlgpuAndCpuModelsAgree()
    {
        var cpu = Cpu; var gpu = Backends.Get("ilgpu-cpu-g64");
        var a = Models.Create("resnet8", cpu, 5, width: 0.5f); var b = Models.Create("resnet8", gpu, 5, width: 0.5f);
        a.Eval(); b.Eval();
        var xa = Images(cpu, 2, 8); var xb = Images(gpu, 2, 8);
        var la = Logits(a, xa); var lb = Logits(b, xb);
        for (int i = 0; i < la.Length; i++) Assert.That(lb[i], Is.EqualTo(la[i]).Within(1e-4 + 1e-4 * Math.Abs(la[i])));
    }
}
