using System.Runtime.CompilerServices;
using LsKd.Kernels.Cpu;
using NUnit.Framework;

namespace LsKd.Tests;

/// <summary>The CPU backend's subnormal mode is real: flushed threads turn a subnormal product into 0, IEEE threads keep it.</summary>
public class FloatControlTests
{
    static readonly float[] Factors = [1e-30f, 1e-10f];   // their product, 1e-40, is subnormal in fp32

    // Not inlined and read from an array, so the JIT cannot fold the product at compile time: it folds in the
    // compiling thread's mode, which a new thread inherits from its parent (a test worker that ran flushed ops).
    [MethodImpl(MethodImplOptions.NoInlining)]
    static float Multiply(float[] f) => f[0] * f[1];

    /// <summary>The product on a new thread in mode, started by a thread in parentMode (a new thread inherits its
    /// parent's register, so both starting points are tried).</summary>
    static float Product(DenormalMode mode, DenormalMode parentMode)
    {
        float result = -1;
        var parent = new Thread(() =>
        {
            FloatControl.Use(parentMode);
            var t = new Thread(() =>
            {
                FloatControl.Use(mode);
                result = Multiply(Factors);
            });
            t.Start(); t.Join();
        });
        parent.Start(); parent.Join();
        return result;
    }

    [Test]
    public void FlushTurnsSubnormalsIntoZeroAndIeeeKeepsThem()
    {
        if (!FloatControl.Supported) Assert.Ignore("this host's floating-point control register is not settable");
        foreach (var parent in new[] { DenormalMode.Flush, DenormalMode.Ieee })
        {
            Assert.That(Product(DenormalMode.Ieee, parent), Is.GreaterThan(0f).And.LessThan(1.2e-38f), $"IEEE thread, {parent} parent");
            Assert.That(Product(DenormalMode.Flush, parent), Is.EqualTo(0f), $"flushed thread, {parent} parent");
        }
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
