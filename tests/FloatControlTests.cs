using System.Runtime.CompilerServices;
using LsKd.Kernels.Cpu;
using NUnit.Framework;

namespace LsKd.Tests;

/// <summary>The CPU backend's subnormal mode is real: flushed threads turn a subnormal product into 0, IEEE threads keep it.</summary>
public class FloatControlTests
{
    static readonly float[] Factors = [1e-30f, 1e-10f];   // their product, 1e-40, is subnormal in fp32

    // Not inlined and read from an array, so the JIT cannot fold the product at compile time.
    [MethodImpl(MethodImplOptions.NoInlining)]
    static float Multiply(float[] f) => f[0] * f[1];

    /// <summary>The bits of the product on a new thread in mode, started by a thread in parentMode (a new thread
    /// inherits its parent's register, so both starting points are tried). Bits, because the test's own thread may
    /// be flushed by an earlier test's backend ops, and with DAZ a comparison reads a subnormal as 0.</summary>
    static int ProductBits(DenormalMode mode, DenormalMode parentMode)
    {
        int result = -1;
        var parent = new Thread(() =>
        {
            FloatControl.Use(parentMode);
            var t = new Thread(() =>
            {
                FloatControl.Use(mode);
                result = BitConverter.SingleToInt32Bits(Multiply(Factors));
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
            // A positive subnormal has a zero exponent field and a nonzero fraction: bits in (0, 0x00800000).
            Assert.That(ProductBits(DenormalMode.Ieee, parent), Is.GreaterThan(0).And.LessThan(0x00800000), $"IEEE thread, {parent} parent");
            Assert.That(ProductBits(DenormalMode.Flush, parent), Is.EqualTo(0), $"flushed thread, {parent} parent");
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
