using System.Runtime.CompilerServices;

namespace LsKd.Kernels.Cpu;

/// <summary>An element-wise function and its derivative, for one SIMD width or one scalar.</summary>
internal interface IUnaryMap
{
    TV Vec<TV>(TV x) where TV : struct, ISimd<TV>;
    TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV>;
    float Scalar(float x);
    float ScalarGrad(float x);
}

internal readonly struct CopyMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Splat(1f);
    public float Scalar(float x) => x;
    public float ScalarGrad(float x) => 1f;
}

internal readonly struct ScaleMap(float s) : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Mul(x, TV.Splat(s));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Splat(s);
    public float Scalar(float x) => s * x;
    public float ScalarGrad(float x) => s;
}

internal readonly struct AddScalarMap(float s) : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Add(x, TV.Splat(s));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Splat(1f);
    public float Scalar(float x) => x + s;
    public float ScalarGrad(float x) => 1f;
}

internal readonly struct ReluMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Max(x, TV.Splat(0f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.SelectGreater(x, TV.Splat(0f), TV.Splat(1f), TV.Splat(0f));
    public float Scalar(float x) => x > 0f ? x : 0f;
    public float ScalarGrad(float x) => x > 0f ? 1f : 0f;
}

internal readonly struct Relu6Map : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Min(TV.Max(x, TV.Splat(0f)), TV.Splat(6f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> =>
        TV.SelectGreater(x, TV.Splat(0f), TV.SelectGreater(TV.Splat(6f), x, TV.Splat(1f), TV.Splat(0f)), TV.Splat(0f));
    public float Scalar(float x) => x > 0f ? (x < 6f ? x : 6f) : 0f;
    public float ScalarGrad(float x) => x > 0f && x < 6f ? 1f : 0f;
}

internal readonly struct SquareMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Mul(x, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Add(x, x);
    public float Scalar(float x) => x * x;
    public float ScalarGrad(float x) => 2f * x;
}

internal readonly struct ExpMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Exp(x);
    public float Scalar(float x) => SimdMath.Exp(x);
    public float ScalarGrad(float x) => SimdMath.Exp(x);
}

internal readonly struct SqrtMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Sqrt(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Div(TV.Splat(0.5f), TV.Sqrt(x));
    public float Scalar(float x) => MathF.Sqrt(x);
    public float ScalarGrad(float x) => 0.5f / MathF.Sqrt(x);
}

/// <summary>tanh through the clamped vector Exp: 1 - 2 / (exp(2u) + 1).</summary>
internal readonly struct TanhMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV T<TV>(TV u) where TV : struct, ISimd<TV> => TV.Sub(TV.Splat(1f), TV.Div(TV.Splat(2f), TV.Add(TV.Exp(TV.Add(u, u)), TV.Splat(1f))));
    public static float T(float u) => 1f - 2f / (SimdMath.Exp(u + u) + 1f);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => T(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> { var t = T(x); return TV.Sub(TV.Splat(1f), TV.Mul(t, t)); }
    public float Scalar(float x) => T(x);
    public float ScalarGrad(float x) { float t = T(x); return 1f - t * t; }
}

internal readonly struct SigmoidMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Div(TV.Splat(1f), TV.Add(TV.Splat(1f), TV.Exp(TV.Sub(TV.Splat(0f), x))));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> { var s = Vec(x); return TV.Mul(s, TV.Sub(TV.Splat(1f), s)); }
    public float Scalar(float x) => 1f / (1f + SimdMath.Exp(-x));
    public float ScalarGrad(float x) { float s = Scalar(x); return s * (1f - s); }
}

/// <summary>GELU (tanh form), see <see cref="ScalarMath.Gelu"/>.</summary>
internal readonly struct GeluMap : IUnaryMap
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Vec<TV>(TV x) where TV : struct, ISimd<TV>
    {
        var u = TV.Mul(TV.Splat(ScalarMath.Sqrt2OverPi), TV.Fma(TV.Mul(TV.Splat(ScalarMath.GeluCoeff), TV.Mul(x, x)), x, x));
        return TV.Mul(TV.Mul(TV.Splat(0.5f), x), TV.Add(TV.Splat(1f), TanhMap.T(u)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV>
    {
        var x2 = TV.Mul(x, x);
        var u = TV.Mul(TV.Splat(ScalarMath.Sqrt2OverPi), TV.Fma(TV.Mul(TV.Splat(ScalarMath.GeluCoeff), x2), x, x));
        // tanh = 1 - 2/(e+1) and sech^2 = 4e/(e+1)^2 with e = exp(2u): no cancellation in the tails.
        var e = TV.Exp(TV.Add(u, u));
        var ep1 = TV.Add(e, TV.Splat(1f));
        var t = TV.Sub(TV.Splat(1f), TV.Div(TV.Splat(2f), ep1));
        var sech2 = TV.Div(TV.Mul(TV.Splat(4f), e), TV.Mul(ep1, ep1));
        var du = TV.Mul(TV.Splat(ScalarMath.Sqrt2OverPi), TV.Fma(TV.Splat(3f * ScalarMath.GeluCoeff), x2, TV.Splat(1f)));
        var half = TV.Splat(0.5f);
        return TV.Fma(TV.Mul(TV.Mul(half, x), sech2), du, TV.Mul(half, TV.Add(TV.Splat(1f), t)));
    }

    public float Scalar(float x)
    {
        float u = ScalarMath.Sqrt2OverPi * (x + ScalarMath.GeluCoeff * x * x * x);
        return 0.5f * x * (1f + TanhMap.T(u));
    }

    public float ScalarGrad(float x)
    {
        float u = ScalarMath.Sqrt2OverPi * (x + ScalarMath.GeluCoeff * x * x * x);
        float e = SimdMath.Exp(u + u), t = 1f - 2f / (e + 1f), sech2 = 4f * e / ((e + 1f) * (e + 1f));
        float du = ScalarMath.Sqrt2OverPi * (1f + 3f * ScalarMath.GeluCoeff * x * x);
        return 0.5f * (1f + t) + 0.5f * x * sech2 * du;
    }
}
