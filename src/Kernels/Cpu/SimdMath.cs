using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LsKd.Kernels.Cpu;

/// <summary>Vectorised transcendental functions for the hot row kernels (softmax, losses, GELU).
/// Exp is the Cephes single-precision scheme: range reduction by ln 2 in two parts, a degree-5 polynomial and
/// an exponent-bit scale; about 1-2 ulp on [-87, 88], clamped outside (exp of -inf gives ~1e-38, not NaN).</summary>
public static class SimdMath
{
    const float ExpHi = 88.3762626647949f, ExpLo = -87.3365447505531f;
    const float Log2E = 1.44269504088896341f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    const float P0 = 1.9875691500E-4f, P1 = 1.3981999507E-3f, P2 = 8.3334519073E-3f, P3 = 4.1665795894E-2f, P4 = 1.6666665459E-1f, P5 = 5.0000001201E-1f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.MinNative(Vector512.MaxNative(x, Vector512.Create(ExpLo)), Vector512.Create(ExpHi));
        var fx = Vector512.Round(x * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(fx, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(fx, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        // vscalefps does p * 2^fx in one instruction instead of convert, add, shift and multiply.
        if (Avx512F.IsSupported) return Avx512F.Scale(p, fx);
        var pow2 = (Vector512.ConvertToInt32(fx) + Vector512.Create(127)) << 23;
        return p * pow2.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.MinNative(Vector256.MaxNative(x, Vector256.Create(ExpLo)), Vector256.Create(ExpHi));
        var fx = Vector256.Round(x * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(fx, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(fx, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        // As in the Vector512 Exp, vscalefps (VL form) where AVX-512VL exists: one instruction, the same exact
        // power-of-two scaling, and it sidesteps a .NET 10.0.12 full-opt JIT miscompilation of the convert-add-shift
        // below on AVX-512 hardware (caught by KernelTests on cpu-v256-1t; the path stays right without AVX-512).
        if (Avx512F.VL.IsSupported) return Avx512F.VL.Scale(p, fx);
        var pow2 = (Vector256.ConvertToInt32(fx) + Vector256.Create(127)) << 23;
        return p * pow2.AsSingle();
    }

    /// <summary>Scalar twin of the vector Exp, so SIMD bodies and scalar tails agree bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp(float x)
    {
        x = MathF.Min(MathF.Max(x, ExpLo), ExpHi);
        float fx = MathF.Round(x * Log2E);
        float r = MathF.FusedMultiplyAdd(fx, -Ln2Hi, x);
        r = MathF.FusedMultiplyAdd(fx, -Ln2Lo, r);
        float p = MathF.FusedMultiplyAdd(P0, r, P1);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, r * r, r + 1f);
        return p * BitConverter.Int32BitsToSingle(((int)fx + 127) << 23);
    }

    /// <summary>tanh(u) = 1 - 2 / (exp(2u) + 1), stable at both ends thanks to the clamped Exp.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Tanh(Vector512<float> u) => Vector512<float>.One - Vector512.Create(2f) / (Exp(u + u) + Vector512<float>.One);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Tanh(Vector256<float> u) => Vector256<float>.One - Vector256.Create(2f) / (Exp(u + u) + Vector256<float>.One);
}
