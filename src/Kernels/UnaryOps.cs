using System.Runtime.CompilerServices;
using LsKd.Kernels.Cpu;

namespace LsKd.Kernels;

/// <summary>
/// An element-wise op defined in one place (candle's UnaryOpT): its name, its float64 reference and derivative
/// (what `Reference/` and the checks compare against), and its float32 scalar form and derivative (the ILGPU
/// kernels through <see cref="ScalarMath.Unary"/>, and the CPU backend's tails). The scalar forms must stay
/// ILGPU-compilable: no allocation, no exceptions, transcendentals from <see cref="ScalarMath"/>.
/// </summary>
public interface IUnaryOp
{
    string Name { get; }
    double Reference(double x);
    double ReferenceGrad(double x);
    float Scalar(float x);
    float ScalarGrad(float x);
}

/// <summary>An op with a SIMD form for the CPU backend (any <see cref="ISimd{TSelf}"/> width).</summary>
public interface IVectorUnaryOp : IUnaryOp
{
    TV Vec<TV>(TV x) where TV : struct, ISimd<TV>;
    TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV>;
}

public readonly struct CopyOp : IVectorUnaryOp
{
    public string Name => "copy";
    public double Reference(double x) => x;
    public double ReferenceGrad(double x) => 1;
    public float Scalar(float x) => x;
    public float ScalarGrad(float x) => 1f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Splat(1f);
}

/// <summary>s x (also Neg, with s = -1).</summary>
public readonly struct ScaleOp(float s) : IVectorUnaryOp
{
    public string Name => "scale";
    public double Reference(double x) => s * x;
    public double ReferenceGrad(double x) => s;
    public float Scalar(float x) => s * x;
    public float ScalarGrad(float x) => s;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Mul(x, TV.Splat(s));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Splat(s);
}

public readonly struct AddScalarOp(float s) : IVectorUnaryOp
{
    public string Name => "add-scalar";
    public double Reference(double x) => x + s;
    public double ReferenceGrad(double x) => 1;
    public float Scalar(float x) => x + s;
    public float ScalarGrad(float x) => 1f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Add(x, TV.Splat(s));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Splat(1f);
}

/// <summary>max(x, 0); the derivative at 0 is 0, as in PyTorch.</summary>
public readonly struct ReluOp : IVectorUnaryOp
{
    public string Name => "relu";
    public double Reference(double x) => Math.Max(x, 0);
    public double ReferenceGrad(double x) => x > 0 ? 1 : 0;
    public float Scalar(float x) => x > 0f ? x : 0f;
    public float ScalarGrad(float x) => x > 0f ? 1f : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Max(x, TV.Splat(0f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.SelectGreater(x, TV.Splat(0f), TV.Splat(1f), TV.Splat(0f));
}

public readonly struct Relu6Op : IVectorUnaryOp
{
    public string Name => "relu6";
    public double Reference(double x) => Math.Min(Math.Max(x, 0), 6);
    public double ReferenceGrad(double x) => x > 0 && x < 6 ? 1 : 0;
    public float Scalar(float x) => x > 0f ? (x < 6f ? x : 6f) : 0f;
    public float ScalarGrad(float x) => x > 0f && x < 6f ? 1f : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Min(TV.Max(x, TV.Splat(0f)), TV.Splat(6f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> =>
        TV.SelectGreater(x, TV.Splat(0f), TV.SelectGreater(TV.Splat(6f), x, TV.Splat(1f), TV.Splat(0f)), TV.Splat(0f));
}

public readonly struct SquareOp : IVectorUnaryOp
{
    public string Name => "square";
    public double Reference(double x) => x * x;
    public double ReferenceGrad(double x) => 2 * x;
    public float Scalar(float x) => x * x;
    public float ScalarGrad(float x) => 2f * x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Mul(x, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Add(x, x);
}

public readonly struct ExpOp : IVectorUnaryOp
{
    public string Name => "exp";
    public double Reference(double x) => Math.Exp(x);
    public double ReferenceGrad(double x) => Math.Exp(x);
    public float Scalar(float x) => MathF.Exp(x);
    public float ScalarGrad(float x) => MathF.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Exp(x);
}

/// <summary>Natural log: scalar only (no vector log in <see cref="ISimd{TSelf}"/>; nothing hot uses it).</summary>
public readonly struct LogOp : IUnaryOp
{
    public string Name => "log";
    public double Reference(double x) => Math.Log(x);
    public double ReferenceGrad(double x) => 1 / x;
    public float Scalar(float x) => MathF.Log(x);
    public float ScalarGrad(float x) => 1f / x;
}

public readonly struct SqrtOp : IVectorUnaryOp
{
    public string Name => "sqrt";
    public double Reference(double x) => Math.Sqrt(x);
    public double ReferenceGrad(double x) => 0.5 / Math.Sqrt(x);
    public float Scalar(float x) => MathF.Sqrt(x);
    public float ScalarGrad(float x) => 0.5f / MathF.Sqrt(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Sqrt(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> => TV.Div(TV.Splat(0.5f), TV.Sqrt(x));
}

/// <summary>tanh; vector form 1 - 2 / (exp(2x) + 1) through the clamped vector Exp.</summary>
public readonly struct TanhOp : IVectorUnaryOp
{
    public string Name => "tanh";
    public double Reference(double x) => Math.Tanh(x);
    public double ReferenceGrad(double x) => 1 - Math.Tanh(x) * Math.Tanh(x);
    public float Scalar(float x) => ScalarMath.Tanh(x);
    public float ScalarGrad(float x) { float t = ScalarMath.Tanh(x); return 1f - t * t; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV T<TV>(TV u) where TV : struct, ISimd<TV> => TV.Sub(TV.Splat(1f), TV.Div(TV.Splat(2f), TV.Add(TV.Exp(TV.Add(u, u)), TV.Splat(1f))));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => T(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> { var t = T(x); return TV.Sub(TV.Splat(1f), TV.Mul(t, t)); }
}

public readonly struct SigmoidOp : IVectorUnaryOp
{
    public string Name => "sigmoid";
    public double Reference(double x) => 1 / (1 + Math.Exp(-x));
    public double ReferenceGrad(double x) { double s = Reference(x); return s * (1 - s); }
    public float Scalar(float x) => ScalarMath.Sigmoid(x);
    public float ScalarGrad(float x) { float s = ScalarMath.Sigmoid(x); return s * (1f - s); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Vec<TV>(TV x) where TV : struct, ISimd<TV> => TV.Div(TV.Splat(1f), TV.Add(TV.Splat(1f), TV.Exp(TV.Sub(TV.Splat(0f), x))));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV VecGrad<TV>(TV x) where TV : struct, ISimd<TV> { var s = Vec(x); return TV.Mul(s, TV.Sub(TV.Splat(1f), s)); }
}

/// <summary>GELU, tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).</summary>
public readonly struct GeluOp : IVectorUnaryOp
{
    public string Name => "gelu";
    public double Reference(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    public double ReferenceGrad(double x)
    {
        double c = Math.Sqrt(2 / Math.PI), u = c * (x + 0.044715 * x * x * x), t = Math.Tanh(u);
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
    }
    public float Scalar(float x) => ScalarMath.Gelu(x);
    public float ScalarGrad(float x) => ScalarMath.GeluGrad(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TV Vec<TV>(TV x) where TV : struct, ISimd<TV>
    {
        var u = TV.Mul(TV.Splat(ScalarMath.Sqrt2OverPi), TV.Fma(TV.Mul(TV.Splat(ScalarMath.GeluCoeff), TV.Mul(x, x)), x, x));
        return TV.Mul(TV.Mul(TV.Splat(0.5f), x), TV.Add(TV.Splat(1f), TanhOp.T(u)));
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
}
