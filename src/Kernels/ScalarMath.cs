namespace LsKd.Kernels;

/// <summary>Scalar definitions shared by the CPU tails, the ILGPU kernels and the docs: one source of truth for
/// what each op computes. Everything here must stay ILGPU-compilable (no allocation, no exceptions).</summary>
public static class ScalarMath
{
    public const float Sqrt2OverPi = 0.7978845608028654f;
    public const float GeluCoeff = 0.044715f;

    /// <summary>GELU, tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as x sigmoid(2u) (the same
    /// function): no cancellation in 1 + tanh(u) for negative x, and no tanh, which CUDA compiles to an approximate
    /// instruction with 2^-11 relative error.</summary>
    public static float Gelu(float x)
    {
        float u = Sqrt2OverPi * (x + GeluCoeff * x * x * x);
        return x / (1f + MathF.Exp(-2f * u));
    }

    /// <summary>d/dx GELU = s + 2 x s (1 - s) u', s = sigmoid(2u); 1 - s is e s with e = exp(-2u), clamped so that e s
    /// never becomes inf x 0.</summary>
    public static float GeluGrad(float x)
    {
        float u = Sqrt2OverPi * (x + GeluCoeff * x * x * x);
        float e = MathF.Exp(MathF.Min(-2f * u, 80f));
        float sig = 1f / (1f + e);
        float du = Sqrt2OverPi * (1f + 3f * GeluCoeff * x * x);
        return sig + 2f * x * sig * (e * sig) * du;
    }

    /// <summary>tanh through exp of a non-positive argument: absolute error near float rounding on every device
    /// (CUDA's tanh instruction is approximate).</summary>
    public static float Tanh(float x)
    {
        float e = MathF.Exp(-2f * MathF.Abs(x));
        float t = (1f - e) / (1f + e);
        return x < 0f ? -t : t;
    }

    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>The float32 form of a unary op (defined in <see cref="IUnaryOp"/>; this switch only maps the enum).</summary>
    public static float Unary(UnaryOp op, float x, float s) => op switch
    {
        UnaryOp.Copy => new CopyOp().Scalar(x),
        UnaryOp.Relu => new ReluOp().Scalar(x),
        UnaryOp.Relu6 => new Relu6Op().Scalar(x),
        UnaryOp.Gelu => new GeluOp().Scalar(x),
        UnaryOp.Scale => new ScaleOp(s).Scalar(x),
        UnaryOp.AddScalar => new AddScalarOp(s).Scalar(x),
        UnaryOp.Neg => new ScaleOp(-1f).Scalar(x),
        UnaryOp.Square => new SquareOp().Scalar(x),
        UnaryOp.Exp => new ExpOp().Scalar(x),
        UnaryOp.Log => new LogOp().Scalar(x),
        UnaryOp.Sqrt => new SqrtOp().Scalar(x),
        UnaryOp.Tanh => new TanhOp().Scalar(x),
        _ => new SigmoidOp().Scalar(x),
    };

    /// <summary>f'(x) for the unary op (ReLU's derivative at 0 is 0, as in PyTorch).</summary>
    public static float UnaryGrad(UnaryOp op, float x, float s) => op switch
    {
        UnaryOp.Copy => new CopyOp().ScalarGrad(x),
        UnaryOp.Relu => new ReluOp().ScalarGrad(x),
        UnaryOp.Relu6 => new Relu6Op().ScalarGrad(x),
        UnaryOp.Gelu => new GeluOp().ScalarGrad(x),
        UnaryOp.Scale => new ScaleOp(s).ScalarGrad(x),
        UnaryOp.AddScalar => new AddScalarOp(s).ScalarGrad(x),
        UnaryOp.Neg => new ScaleOp(-1f).ScalarGrad(x),
        UnaryOp.Square => new SquareOp().ScalarGrad(x),
        UnaryOp.Exp => new ExpOp().ScalarGrad(x),
        UnaryOp.Log => new LogOp().ScalarGrad(x),
        UnaryOp.Sqrt => new SqrtOp().ScalarGrad(x),
        UnaryOp.Tanh => new TanhOp().ScalarGrad(x),
        _ => new SigmoidOp().ScalarGrad(x),
    };

    public static float Binary(BinaryOp op, float a, float b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => a > b ? a : b,
        BinaryOp.AddRelu => a + b > 0f ? a + b : 0f,
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
