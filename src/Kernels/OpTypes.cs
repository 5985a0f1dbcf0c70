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
public readonly record struct SgdConfig(float LearningRate, float Momentum = 0.9f, float WeightDecay = 0f, bool Nesterov = false);

/// <summary>AdamW with decoupled weight decay (Loshchilov and Hutter), bias-corrected moments.</summary>
public readonly record struct AdamWConfig(float LearningRate, float Beta1 = 0.9f, float Beta2 = 0.999f, float Epsilon = 1e-8f, float WeightDecay = 0.01f);
