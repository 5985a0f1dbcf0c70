using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Tests;

/// <summary>The fused optimiser: on a backend that slices buffers (ILGPU) the parameters and gradients live in two
/// arenas and a step is one kernel; it must train exactly as the per-tensor optimiser does, and the model must keep
/// its values after the optimiser is gone.</summary>
[TestFixture]
public class FusedOptimizerTests
{
    static float[][] Train(IBackend be, bool fuse, bool adam, out bool fused, out long stepDispatches, out long zeroDispatches)
    {
        var model = Nets.Models.Create("mlp", be, seed: 3, width: 1f / 32, imageSize: 8);   // 64 -> 16 -> 8 -> 10: quick on the emulator
        var x = Tensor.Create(be, [4, 1, 8, 8]);
        Init.Normal(x, 5, 0f, 1f);
        using var labels = be.AllocateInt(4);
        labels.Upload([1, 7, 3, 3]);
        Optimizer opt = adam ? new AdamW(model.Parameters(), new AdamWConfig(1e-3f, 0.9f, 0.98f, 1e-8f, 0.01f), fuse)
                             : new Sgd(model.Parameters(), new SgdConfig(0.05f, 0.9f, 5e-4f), fuse);
        var counter = (BackendBase)be;
        stepDispatches = zeroDispatches = 0;
        using (opt)
        {
            fused = opt.Fused;
            model.Train();
            for (int i = 0; i < 3; i++)
            {
                long z0 = counter.Dispatches;
                opt.ZeroGrad();
                zeroDispatches = counter.Dispatches - z0;
                Tape.Backward(Ops.LabelSmoothingCrossEntropy(model.Forward(x), labels, 0.1f));
                long s0 = counter.Dispatches;
                opt.Step();
                stepDispatches = counter.Dispatches - s0;
                Tape.Current.Reset();
            }
        }
        x.Buffer.Dispose();
        return model.Parameters().Select(p => p.ToArray()).ToArray();   // read after the optimiser moved them back
    }

    [TestCase(false)]
    [TestCase(true)]
    public void FusedStepsTrainExactlyLikePerTensorSteps(bool adam)
    {
        var be = Backends.Get("ilgpu-cpu-g64");
        var perTensor = Train(be, fuse: false, adam, out bool f0, out long step0, out long zero0);
        var fused = Train(be, fuse: true, adam, out bool f1, out long step1, out long zero1);
        Assert.That(f0, Is.False);
        Assert.That(f1, Is.True);
        int tensors = perTensor.Length;
        Assert.That(step0, Is.EqualTo(tensors)); Assert.That(zero0, Is.EqualTo(tensors));
        Assert.That(step1, Is.EqualTo(1), "one optimiser launch for all parameters");
        Assert.That(zero1, Is.EqualTo(1), "one fill zeroes every gradient");
        // The emulator's group reductions add in thread order, so two runs agree to rounding, not bit for bit.
        for (int i = 0; i < tensors; i++) Assert.That(fused[i], Is.EqualTo(perTensor[i]).Within(1e-6f), $"parameter tensor {i}");
        Assert.That(perTensor.SelectMany(p => p).Any(v => v != 0f), "the parameters trained to something");
    }

    [Test]
    public void TheCpuBackendStepsEachTensorOnItsOwn()
    {
        var model = Nets.Models.Create("mlp", Backends.Get("cpu-v512-2t"), seed: 3);
        using var opt = new Sgd(model.Parameters(), new SgdConfig(0.05f, 0.9f, 0f));
        Assert.That(opt.Fused, Is.False);
    }
}
