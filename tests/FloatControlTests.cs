using LsKd.Kernels.Cpu;
using NUnit.Framework;

namespace LsKd.Tests;

/// <summary>The CPU backend's subnormal mode is real: flushed threads turn a subnormal product into 0, IEEE threads keep it.</summary>
public class FloatControlTests
{
    static float Product(DenormalMode mode)
    {
        float result = 0;
        var t = new Thread(() =>
        {
            FloatControl.Use(mode);
            float a = 1e-30f, b = 1e-10f;   // 1e-40 is subnormal in fp32
            result = Volatile.Read(ref a) * Volatile.Read(ref b);
        });
        t.Start(); t.Join();
        return result;
    }

    [Test]
    public void FlushTurnsSubnormalsIntoZeroAndIeeeKeepsThem()
    {
        if (!FloatControl.Supported) Assert.Ignore("this host's floating-point control register is not settable");
        Assert.That(Product(DenormalMode.Ieee), Is.GreaterThan(0f).And.LessThan(1.2e-38f));
        Assert.That(Product(DenormalMode.Flush), Is.EqualTo(0f));
    }

    [Test]
    public void BackendOpsSetTheModeOnTheCallingThread()
    {
        if (!FloatControl.Supported) Assert.Ignore("this host's floating-point control register is not settable");
        DenormalMode seen = DenormalMode.Ieee, afterSwitch = DenormalMode.Flush;
        var t = new Thread(() =>
        {
            using var be = new CpuBackend(1);
            using var x = be.Allocate(4);
            be.Fill(x, 0, 4, 1f);
            seen = FloatControl.Current;
            be.Denormals = DenormalMode.Ieee;
            be.Fill(x, 0, 4, 1f);
            afterSwitch = FloatControl.Current;
        });
        t.Start(); t.Join();
        Assert.That(seen, Is.EqualTo(DenormalMode.Flush));
        Assert.That(afterSwitch, Is.EqualTo(DenormalMode.Ieee));
    }
}
