using LsKd.Kernels.Checks;

namespace LsKd.Tests;

/// <summary>Every op on every backend against its float64 reference (tolerances are stated per case in
/// <see cref="KernelCheck"/>; failures print the worst error, its index, got and expected).</summary>
[TestFixture]
public class KernelTests
{
    static IEnumerable<TestCaseData> Cases() =>
        from b in Backends.Names
        from op in KernelCheck.Ops
        select new TestCaseData(b, op).SetName($"{op} on {b}");

    [TestCaseSource(nameof(Cases))]
    public void MatchesFloat64Reference(string backendName, string op)
    {
        var backend = Backends.Get(backendName);
        var results = new KernelCheck(backend, small: Backends.IsEmulator(backendName)).Run(op);
        Assert.That(results, Is.Not.Empty, "the check produced no comparisons");
        var failures = results.Where(r => !r.Passed).Select(r => r.ToString()).ToList();
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void CheckHarnessDetectsAWrongKernel()
    {
        // A backend whose GELU is silently ReLU must fail the unary check: the harness itself can fail.
        var results = new KernelCheck(new BrokenBackend()).Run("unary");
        Assert.That(results.Any(r => !r.Passed && r.Case == "Gelu"), Is.True);
    }

    [Test]
    public void AKernelThatThrowsIsAFailedRowAndTheOtherOpsStillRun()
    {
        // A softmax that throws (as a PTX the driver rejects would) fails its op with the message; the next op runs.
        var check = new KernelCheck(new ThrowingBackend());
        var softmax = check.Run("softmax");
        Assert.That(softmax.Last().Passed, Is.False);
        Assert.That(softmax.Last().Error, Does.Contain("CUDA_ERROR_INVALID_PTX"));
        Assert.That(softmax.Last().ToString(), Does.Contain("threw InvalidOperationException"));
        Assert.That(check.Run("unary").All(r => r.Passed), Is.True);
    }

    sealed class ThrowingBackend : LsKd.Kernels.Cpu.CpuBackend
    {
        protected override void SoftmaxCore(LsKd.Kernels.DeviceBuffer<float> x, LsKd.Kernels.DeviceBuffer<float> y, int rows, int cols, float temperature, bool log) =>
            throw new InvalidOperationException("CUDA_ERROR_INVALID_PTX: a PTX\nthe driver rejects");
    }

    sealed class BrokenBackend : LsKd.Kernels.Cpu.CpuBackend
    {
        protected override void UnaryCore(LsKd.Kernels.UnaryOp op, LsKd.Kernels.DeviceBuffer<float> x, LsKd.Kernels.DeviceBuffer<float> y, int count, float scalar) =>
            base.UnaryCore(op == LsKd.Kernels.UnaryOp.Gelu ? LsKd.Kernels.UnaryOp.Relu : op, x, y, count, scalar);
    }
}
