using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;

namespace LsKd.Tests;

/// <summary>Bad arguments fail before any kernel runs, with a message naming the shapes, backends or choices.</summary>
[TestFixture]
public class BadInputTests
{
    [Test]
    public void MatMulShapeMismatchNamesBothShapes()
    {
        var be = new CpuBackend(1);
        var a = Tensor.Create(be, [3, 4]); var b = Tensor.Create(be, [5, 2]);
        var ex = Assert.Throws<ArgumentException>(() => Ops.MatMul(a, b))!;
        Assert.That(ex.Message, Does.Contain("[3, 4]").And.Contain("[5, 2]"));
    }

    [Test]
    public void ElementwiseShapeMismatchNamesBothShapes()
    {
        var be = new CpuBackend(1);
        var ex = Assert.Throws<ArgumentException>(() => Ops.Add(Tensor.Create(be, [2, 3]), Tensor.Create(be, [3, 2])))!;
        Assert.That(ex.Message, Does.Contain("[2, 3]").And.Contain("[3, 2]"));
    }

    [Test]
    public void TensorsFromTwoBackendsAreRejected()
    {
        var cpu = new CpuBackend(1);
        var emu = Backends.Get("ilgpu-cpu-g16");
        var ex = Assert.Throws<ArgumentException>(() => Ops.Add(Tensor.Create(cpu, [2]), Tensor.Create(emu, [2])))!;
        Assert.That(ex.Message, Does.Contain("cpu").And.Contain("ilgpu-cpu"));
        // Raw kernel level too.
        using var x = cpu.Allocate(4); using var y = emu.Allocate(4);
        var ex2 = Assert.Throws<ArgumentException>(() => cpu.Unary(UnaryOp.Relu, x, y, 4))!;
        Assert.That(ex2.Message, Does.Contain("'y'").And.Contain("ilgpu-cpu"));
    }

    [Test]
    public void UnknownDeviceListsChoices()
    {
        var ex = Assert.Throws<ArgumentException>(() => Devices.Create("tpu"))!;
        Assert.That(ex.Message, Does.Contain("'tpu'").And.Contain("auto, cpu, cpu-v256, cuda, ilgpu-cpu"));
    }

    [Test]
    public void GemmBufferTooSmallIsReportedBeforeRunning()
    {
        var be = new CpuBackend(1);
        using var a = be.Allocate(6); using var b = be.Allocate(6); using var c = be.Allocate(3);
        var ex = Assert.Throws<ArgumentException>(() => be.Gemm(new GemmSpec(false, false, 2, 2, 3), a, b, c))!;
        Assert.That(ex.Message, Does.Contain("'C'").And.Contain("holds 3").And.Contain("needs 4"));
    }

    [Test]
    public void LossArgumentsAreValidated()
    {
        var be = new CpuBackend(1);
        using var z = be.Allocate(6); using var t = be.Allocate(6); using var loss = be.Allocate(2); using var labels = be.AllocateInt(2);
        labels.Upload([0, 3]);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => be.LabelSmoothingCrossEntropy(z, labels, loss, null, 2, 3, 0.1f, 1f))!;
        Assert.That(ex.Message, Does.Contain("labels[1] = 3").And.Contain("[0, 3)"));
        labels.Upload([0, 1]);
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => be.LabelSmoothingCrossEntropy(z, labels, loss, null, 2, 3, 1f, 1f))!.Message, Does.Contain("alpha"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => be.KdLoss(z, t, labels, loss, null, 2, 3, new KdConfig(0f), 1f))!.Message, Does.Contain("temperature"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => be.KdLoss(z, t, labels, loss, null, 2, 3, new KdConfig(float.NaN), 1f))!.Message, Does.Contain("temperature"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => be.KdLoss(z, t, labels, loss, null, 2, 3, new KdConfig(2f, 1.5f), 1f))!.Message, Does.Contain("beta"));
        var s = Tensor.Create(be, [2, 3], requiresGrad: true); var tt = Tensor.Create(be, [3, 2]);
        Assert.That(Assert.Throws<ArgumentException>(() => Ops.KdLoss(s, tt, labels, new KdConfig(1f)))!.Message, Does.Contain("[2, 3]").And.Contain("[3, 2]"));
    }
}
