namespace LsKd.Kernels;

/// <summary>Scalar definitions shared by the CPU tails, the ILGPU kernels and the docs: one source of truth for
/// what each op computes. Everything here must stay ILGPU-compilable (no allocation, no exceptions).</summary>
public static class ScalarMath
{
    public const float Sqrt2OverPi = 0.7978845608028654f;
    public const float GeluCoeff = 0.044715f;

    /// <summary>GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    public static float Gelu(float x)
    {
        float u = Sqrt2OverPi * (x + GeluCoeff * x * x * x);
        return 0.5f * x * (1f + MathF.Tanh(u));
    }

    public static float GeluGrad(float x)
    {
        float u = Sqrt2OverPi * (x + GeluCoeff * x * x * x);
        float t = MathF.Tanh(u);
        float du = Sqrt2OverPi * (1f + 3f * GeluCoeff * x * x);
        return 0.5f * (1f + t) + 0.5f * x * (1f - t * t) * du;
    }

    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    public static float Unary(UnaryOp op, float x, float s) => op switch
    {
        UnaryOp.Copy => x,
        UnaryOp.Relu => x > 0f ? x : 0f,
        UnaryOp.Relu6 => x > 0f ? (x < 6f ? x : 6f) : 0f,
        UnaryOp.Gelu => Gelu(x),
        UnaryOp.Scale => s * x,
        UnaryOp.AddScalar => x + s,
        UnaryOp.Neg => -x,
        UnaryOp.Square => x * x,
        UnaryOp.Exp => MathF.Exp(x),
        UnaryOp.Log => MathF.Log(x),
        UnaryOp.Sqrt => MathF.Sqrt(x),
        UnaryOp.Tanh => MathF.Tanh(x),
        _ => Sigmoid(x),
    };

    /// <summary>f'(x) for the unary op (ReLU's derivative at 0 is 0, as in PyTorch).</summary>
    public static float UnaryGrad(UnaryOp op, float x, float s) => op switch
    {
        UnaryOp.Copy => 1f,
        UnaryOp.Relu => x > 0f ? 1f : 0f,
        UnaryOp.Relu6 => x > 0f && x < 6f ? 1f : 0f,
        UnaryOp.Gelu => GeluGrad(x),
        UnaryOp.Scale => s,
        UnaryOp.AddScalar => 1f,
        UnaryOp.Neg => -1f,
        UnaryOp.Square => 2f * x,
        UnaryOp.Exp => MathF.Exp(x),
        UnaryOp.Log => 1f / x,
        UnaryOp.Sqrt => 0.5f / MathF.Sqrt(x),
        UnaryOp.Tanh => 1f - MathF.Tanh(x) * MathF.Tanh(x),
        _ => Sigmoid(x) * (1f - Sigmoid(x)),
    };

    public static float Binary(BinaryOp op, float a, float b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => a > b ? a : b,
        _ => a < b ? a : b,
    };

    // ---- counter-based random numbers: value i depends only on (seed, i), so every backend and every
    //      thread count produces the same tensor.
    public static uint Hash(ulong seed, ulong index)
    {
        ulong z = seed * 0x9E3779B97F4A7C15UL + (index + 1UL) * 0xD1B54A32D192ED03UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (uint)(z >> 32);
    }

    /// <summary>Uniform in [0, 1) with 24 random bits.</summary>
    public static float Uniform01(ulong seed, ulong index) => (Hash(seed, index) >> 8) * (1f / 16777216f);

    /// <summary>Whether inverted dropout keeps element index: a pure function of (seed, index).</summary>
    public static bool DropoutKeep(ulong seed, ulong index, float p) => Uniform01(seed, index) >= p;

    /// <summary>Standard normal by Box-Muller on two counter-based uniforms (u1 in (0, 1]).</summary>
    public static float Normal(ulong seed, ulong index)
    {
        float u1 = ((Hash(seed, 2UL * index) >> 8) + 1u) * (1f / 16777216f);
        float u2 = (Hash(seed, 2UL * index + 1UL) >> 8) * (1f / 16777216f);
        return MathF.Sqrt(-2f * MathF.Log(u1)) * MathF.Cos(6.2831853071795865f * u2);
    }
}
