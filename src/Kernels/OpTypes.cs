namespace LsKd.Kernels;

public enum UnaryOp { Copy, Relu, Relu6, Gelu, Scale, AddScalar, Neg, Square, Exp, Log, Sqrt, Tanh, Sigmoid }

public enum BinaryOp { Add, Sub, Mul, Div, Max, Min }

public enum ReduceOp { Sum, Mean, Max }

/// <summary>Row-major GEMM description: C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b].</summary>
/// <remarks>op(A) is M x K, op(B) is K x N, C is M x N, all contiguous row-major. With TransA, A is stored K x M;
/// with TransB, B is stored N x K. Offsets and batch strides are in elements.</remarks>
public readonly record struct GemmSpec(
    bool TransA, bool TransB, int M, int N, int K,
    float Alpha = 1f, float Beta = 0f,
    int BatchCount = 1, long StrideA = 0, long StrideB = 0, long StrideC = 0,
    long OffsetA = 0, long OffsetB = 0, long OffsetC = 0)
{
    public long Flops => 2L * M * N * K * BatchCount;

    /// <summary>Elements of A, B, C the spec touches, for bounds checks.</summary>
    public long ExtentA => OffsetA + (BatchCount - 1) * StrideA + (long)M * K;
    public long ExtentB => OffsetB + (BatchCount - 1) * StrideB + (long)K * N;
    public long ExtentC => OffsetC + (BatchCount - 1) * StrideC + (long)M * N;

    public override string ToString() =>
        $"{(TransA ? "At" : "A")}{(TransB ? "Bt" : "B")} M={M} N={N} K={K} batch={BatchCount} alpha={Alpha} beta={Beta}";
}

/// <summary>Hyper-parameters of SGD with momentum (PyTorch semantics: v = mu*v + g + wd*p; p -= lr*v, or Nesterov).</summary>
public readonly record struct SgdConfig(float LearningRate, float Momentum = 0.9f, float WeightDecay = 0f, bool Nesterov = false)
{
    public void Validate()
    {
        if (HyperParameters.LearningRate(LearningRate) is { } lr) throw new ArgumentOutOfRangeException("learningRate", LearningRate, lr);
        if (HyperParameters.Momentum(Momentum) is { } m) throw new ArgumentOutOfRangeException("momentum", Momentum, m);
        if (HyperParameters.WeightDecay(WeightDecay) is { } wd) throw new ArgumentOutOfRangeException("weightDecay", WeightDecay, wd);
        if (Nesterov && Momentum == 0f) throw new ArgumentException("Nesterov momentum needs momentum > 0", "nesterov");
    }
}

/// <summary>AdamW with decoupled weight decay (Loshchilov and Hutter), bias-corrected moments.</summary>
public readonly record struct AdamWConfig(float LearningRate, float Beta1 = 0.9f, float Beta2 = 0.999f, float Epsilon = 1e-8f, float WeightDecay = 0.01f)
{
    public void Validate()
    {
        if (HyperParameters.LearningRate(LearningRate) is { } lr) throw new ArgumentOutOfRangeException("learningRate", LearningRate, lr);
        if (!(Beta1 >= 0f && Beta1 < 1f)) throw new ArgumentOutOfRangeException("beta1", Beta1, $"beta1 {Beta1} is outside [0, 1)");
        if (!(Beta2 >= 0f && Beta2 < 1f)) throw new ArgumentOutOfRangeException("beta2", Beta2, $"beta2 {Beta2} is outside [0, 1)");
        if (!(Epsilon > 0f)) throw new ArgumentOutOfRangeException("epsilon", Epsilon, $"epsilon {Epsilon} must be > 0");
        if (HyperParameters.WeightDecay(WeightDecay) is { } wd) throw new ArgumentOutOfRangeException("weightDecay", WeightDecay, wd);
    }
}

/// <summary>A 2-D convolution over NCHW tensors: x [N, C, H, W], weight [K, C / Groups, R, S], y [N, K, OutH, OutW].
/// Groups = C = K is a depthwise convolution. No bias: it is added as a per-channel broadcast.</summary>
public readonly record struct ConvSpec(int N, int C, int H, int W, int K, int R, int S, int Stride = 1, int Pad = 0, int Groups = 1)
{
    public int OutH => (H + 2 * Pad - R) / Stride + 1;
    public int OutW => (W + 2 * Pad - S) / Stride + 1;
    public int CPerGroup => C / Groups;
    public int KPerGroup => K / Groups;
    public long InputSize => (long)N * C * H * W;
    public long OutputSize => (long)N * K * OutH * OutW;
    public long WeightSize => (long)K * CPerGroup * R * S;
    public bool IsDepthwise => Groups == C && Groups == K && Groups > 1;
    /// <summary>Multiply-adds times two of the forward pass.</summary>
    public long Flops => 2L * OutputSize * CPerGroup * R * S;

    /// <summary>Throws a clear error (naming the layer) for a shape the convolution cannot run.</summary>
    public void Validate(string layer = "conv2d")
    {
        if (N < 0 || C <= 0 || H <= 0 || W <= 0 || K <= 0 || R <= 0 || S <= 0)
            throw new ArgumentException($"{layer}: sizes must be positive, got input [{N}, {C}, {H}, {W}], weight [{K}, ?, {R}, {S}]");
        if (Stride <= 0 || Pad < 0) throw new ArgumentException($"{layer}: stride must be > 0 and padding >= 0, got stride {Stride}, padding {Pad}");
        if (Groups <= 0 || C % Groups != 0 || K % Groups != 0)
            throw new ArgumentException($"{layer}: groups {Groups} must divide input channels {C} and output channels {K}");
        if (H + 2 * Pad < R || W + 2 * Pad < S)
            throw new ArgumentException($"{layer}: input {H}x{W} (padding {Pad}) is smaller than the {R}x{S} kernel");
    }

    public override string ToString() => $"x[{N},{C},{H},{W}] w[{K},{CPerGroup},{R},{S}] stride {Stride} pad {Pad} groups {Groups}";
}

public enum PoolOp { Max, Average }

/// <summary>2-D pooling over NCHW: x [N, C, H, W] to y [N, C, OutH, OutW]. Average pooling divides by the full
/// window (padding counts as zeros, PyTorch's count_include_pad default).</summary>
public readonly record struct PoolSpec(PoolOp Op, int N, int C, int H, int W, int Kernel, int Stride, int Pad = 0)
{
    public int OutH => (H + 2 * Pad - Kernel) / Stride + 1;
    public int OutW => (W + 2 * Pad - Kernel) / Stride + 1;
    public long InputSize => (long)N * C * H * W;
    public long OutputSize => (long)N * C * OutH * OutW;

    public void Validate(string layer = "pool2d")
    {
        if (N < 0 || C <= 0 || H <= 0 || W <= 0 || Kernel <= 0 || Stride <= 0 || Pad < 0)
            throw new ArgumentException($"{layer}: sizes must be positive, got input [{N}, {C}, {H}, {W}], kernel {Kernel}, stride {Stride}, padding {Pad}");
        if (2 * Pad > Kernel) throw new ArgumentException($"{layer}: padding {Pad} must be at most half the kernel {Kernel}");
        if (H + 2 * Pad < Kernel || W + 2 * Pad < Kernel)
            throw new ArgumentException($"{layer}: input {H}x{W} (padding {Pad}) is smaller than the {Kernel}x{Kernel} window");
    }
}

/// <summary>Batch normalisation over NCHW (or [N, C] with Spatial = 1): statistics per channel over N and H*W.</summary>
/// <summary>An activation fused into batch norm's output pass (and its mask into the backward pass).</summary>
public enum NormActivation { None, Relu, Relu6 }

public readonly record struct BatchNormSpec(int N, int C, int Spatial, float Epsilon = 1e-5f, float Momentum = 0.1f,
    NormActivation Activation = NormActivation.None)
{
    /// <summary>Upper clamp of the fused activation (ReLU: none, ReLU6: 6).</summary>
    public float Cap => Activation == NormActivation.Relu6 ? 6f : float.PositiveInfinity;

    public long Size => (long)N * C * Spatial;
}
