using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Inverted dropout with the counter-based mask of <see cref="ScalarMath.DropoutKeep"/>, eight or sixteen
/// hashes at a time in 64-bit vector lanes: the scalar hash (three 64-bit multiplies per element) made dropout cost
/// more than a convolution of the same tensor.</summary>
public unsafe partial class CpuBackend
{
    protected override void DropoutCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float p, ulong seed)
    {
        float* xp = P(x), yp = P(y);
        _parallel.For(count, 16, (s, e) => DropoutRun(xp + s, yp + s, e - s, seed, (ulong)s, p), ElementwiseChunk);
    }

    /// <summary>y[j] = keep(seed, first + j) ? x[j] / (1 - p) : 0 for j &lt; n (x and y may be the same run).</summary>
    internal static void DropoutRun(float* x, float* y, int n, ulong seed, ulong first, float p)
    {
        float scale = 1f / (1f - p);
        // keep <=> (hash >> 8) 2^-24 >= p <=> (hash >> 8) >= ceil(p 2^24): exact, as p 2^24 is exact in double.
        ulong threshold = (ulong)Math.Ceiling(p * 16777216.0);
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var lane = Vector512.Create(0UL, 1, 2, 3, 4, 5, 6, 7);
            var vt = Vector512.Create((uint)threshold);
            var vs = Vector512.Create(scale);
            for (; j + 16 <= n; j += 16)
            {
                var lo = KeepBits(seed, Vector512.Create(first + (ulong)j) + lane);
                var hi = KeepBits(seed, Vector512.Create(first + (ulong)j + 8) + lane);
                var keep = Vector512.GreaterThanOrEqual(Vector512.Narrow(lo, hi), vt).AsSingle();
                Vector512.Store(Vector512.BitwiseAnd(Vector512.Load(x + j) * vs, keep), y + j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var lane = Vector256.Create(0UL, 1, 2, 3);
            var vt = Vector256.Create((uint)threshold);
            var vs = Vector256.Create(scale);
            for (; j + 8 <= n; j += 8)
            {
                var lo = KeepBits(seed, Vector256.Create(first + (ulong)j) + lane);
                var hi = KeepBits(seed, Vector256.Create(first + (ulong)j + 4) + lane);
                var keep = Vector256.GreaterThanOrEqual(Vector256.Narrow(lo, hi), vt).AsSingle();
                Vector256.Store(Vector256.BitwiseAnd(Vector256.Load(x + j) * vs, keep), y + j);
            }
        }
        for (; j < n; j++) y[j] = ScalarMath.DropoutKeep(seed, first + (ulong)j, p) ? x[j] * scale : 0f;
    }

    /// <summary>The top 24 bits of <see cref="ScalarMath.Hash"/> (hash >> 8) per lane. Its final z ^= z >> 31 leaves
    /// bits 40..63 unchanged, so it is skipped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<ulong> KeepBits(ulong seed, Vector512<ulong> index)
    {
        var z = Vector512.Create(seed * 0x9E3779B97F4A7C15UL) + (index + Vector512<ulong>.One) * 0xD1B54A32D192ED03UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z >> 40;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<ulong> KeepBits(ulong seed, Vector256<ulong> index)
    {
        var z = Vector256.Create(seed * 0x9E3779B97F4A7C15UL) + (index + Vector256<ulong>.One) * 0xD1B54A32D192ED03UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z >> 40;
    }
}
