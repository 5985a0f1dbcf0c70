namespace LsKd.Kernels;

public enum UnaryOp { Copy, Relu, Relu6, Gelu, Scale, AddScalar, Neg, Square, Exp, Log, Sqrt, Tanh, Sigmoid }

/// <summary>Element-wise binary ops. AddRelu is max(a + b, 0): a residual sum and its activation in one pass.</summary>
public enum BinaryOp { Add, Sub, Mul, Div, Max, Min, AddRelu }

public enum ReduceOp { Sum, Mean, Max }

/// <summary>Row-major GEMM description: C[z] = alpha * op(A[z]) * op(B[z]) + beta * C[z] for z over BatchCount x Heads
/// matrices.</summary>
/// <remarks>op(A) is M x K, op(B) is K x N, C is M x N, row-major with leading dimensions Lda, Ldb, Ldc (0 = packed:
/// the row length). With TransA, A is stored K x M; with TransB, B is stored N x K. Matrix (b, h) starts at
/// Offset + b * Stride + h * HeadStride (elements), so the heads of attention are products on strided views of one
/// projection: Q of head h at column h * d of rows of length Lda = 3 * d_model, without copying.</remarks>
public readonly record struct GemmSpec(
    bool TransA, bool TransB, int M, int N, int K,
    float Alpha = 1f, float Beta = 0f,
    int BatchCount = 1, long StrideA = 0, long StrideB = 0, long StrideC = 0,
    long OffsetA = 0, long OffsetB = 0, long OffsetC = 0,
    int Lda = 0, int Ldb = 0, int Ldc = 0,
    int Heads = 1, long HeadStrideA = 0, long HeadStrideB = 0, long HeadStrideC = 0)
{
    public long Flops => 2L * M * N * K * BatchCount * Heads;
    public int Matrices => BatchCount * Heads;

    /// <summary>Effective leading dimensions (the stored row length when not given).</summary>
    public int LdA => Lda > 0 ? Lda : TransA ? M : K;
    public int LdB => Ldb > 0 ? Ldb : TransB ? K : N;
    public int LdC => Ldc > 0 ? Ldc : N;
    public bool Packed => Lda == 0 && Ldb == 0 && Ldc == 0 && Heads == 1;

    public long BaseA(int z) => OffsetA + z / Heads * StrideA + z % Heads * HeadStrideA;
    public long BaseB(int z) => OffsetB + z / Heads * StrideB + z % Heads * HeadStrideB;
    public long BaseC(int z) => OffsetC + z / Heads * StrideC + z % Heads * HeadStrideC;

    static long Extent(long offset, int batch, long stride, int heads, long headStride, int rows, int cols, int ld) =>
        rows == 0 || cols == 0 ? offset : offset + (batch - 1) * stride + (heads - 1) * headStride + (long)(rows - 1) * ld + cols;

    /// <summary>Elements of A, B, C the spec touches, for bounds checks.</summary>
    public long ExtentA => Extent(OffsetA, BatchCount, StrideA, Heads, HeadStrideA, TransA ? K : M, TransA ? M : K, LdA);
    public long ExtentB => Extent(OffsetB, BatchCount, StrideB, Heads, HeadStrideB, TransB ? N : K, TransB ? K : N, LdB);
    public long ExtentC => Extent(OffsetC, BatchCount, StrideC, Heads, HeadStrideC, M, N, LdC);

    public override string ToString() =>
        $"{(TransA ? "At" : "A")}{(TransB ? "Bt" : "B")} M={M} N={N} K={K} batch={BatchCount}{(Heads > 1 ? $"x{Heads} heads" : "")}{(Packed ? "" : $" ld={LdA}/{LdB}/{LdC}")} alpha={Alpha} beta={Beta}";
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
/// <summary>The three passes of a convolution (a backend may run each with a different algorithm).</summary>
public enum ConvPass { Forward, InputGrad, WeightGrad }

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

/// <summary>Layer normalisation over the last axis of [Rows, Dim] (a row per token), with gamma and beta of
/// length Dim. With a residual, the op first forms s = x + r (written out: the residual stream) and normalises s.</summary>
public readonly record struct LayerNormSpec(int Rows, int Dim, float Epsilon = 1e-5f)
{
    public long Size => (long)Rows * Dim;
}

/// <summary>
/// Scaled dot-product attention of (Batch x Heads) independent heads over strided views, so Q, K and V can be
/// slices of one projection output without copies. Element (b, i, h, c) of Q lives at
/// QOffset + (b * QueryLength + i) * QRowStride + h * HeadDim + c; K, V (KeyLength rows) and O (QueryLength rows)
/// likewise with their own offsets and row strides. K and V may also have their own batch stride (0 = KeyLength
/// rows): a key/value cache of capacity C holds batch b at b * C * stride while KeyLength (the filled part) grows. Causal masking aligns the last query with the last key
/// (query i sees keys j &lt;= i + KeyLength - QueryLength), which is also what an incremental decoder with a key/value
/// cache needs. Dropout on the attention weights uses the counter-based RNG keyed on (seed, b, h, i, j).
/// </summary>
public readonly record struct AttentionSpec(int Batch, int Heads, int QueryLength, int KeyLength, int HeadDim,
    int QRowStride, int KRowStride, int VRowStride, int ORowStride,
    int QOffset = 0, int KOffset = 0, int VOffset = 0, int OOffset = 0,
    bool Causal = false, float DropoutP = 0f, ulong DropoutSeed = 0, int KBatchStride = 0, int VBatchStride = 0)
{
    /// <summary>A packed layout: Q, O as [Batch, QueryLength, Heads * HeadDim] and K, V as [Batch, KeyLength, Heads * HeadDim].</summary>
    public static AttentionSpec Packed(int batch, int heads, int queryLength, int keyLength, int headDim, bool causal = false, float dropoutP = 0f, ulong dropoutSeed = 0) =>
        new(batch, heads, queryLength, keyLength, headDim, heads * headDim, heads * headDim, heads * headDim, heads * headDim,
            Causal: causal, DropoutP: dropoutP, DropoutSeed: dropoutSeed);

    public float Scale => 1f / MathF.Sqrt(HeadDim);
    public int ModelDim => Heads * HeadDim;
    public long KBatch => KBatchStride > 0 ? KBatchStride : (long)KeyLength * KRowStride;
    public long VBatch => VBatchStride > 0 ? VBatchStride : (long)KeyLength * VRowStride;
    /// <summary>Where element (b, row, h, 0) of each view starts.</summary>
    public long QIndex(int b, int i, int h) => QOffset + ((long)b * QueryLength + i) * QRowStride + (long)h * HeadDim;
    public long KIndex(int b, int j, int h) => KOffset + b * KBatch + (long)j * KRowStride + (long)h * HeadDim;
    public long VIndex(int b, int j, int h) => VOffset + b * VBatch + (long)j * VRowStride + (long)h * HeadDim;
    public long OIndex(int b, int i, int h) => OOffset + ((long)b * QueryLength + i) * ORowStride + (long)h * HeadDim;
    public long QExtent => QOffset + ((long)Batch * QueryLength - 1) * QRowStride + ModelDim;
    public long KExtent => KOffset + (Batch - 1) * KBatch + (long)(KeyLength - 1) * KRowStride + ModelDim;
    public long VExtent => VOffset + (Batch - 1) * VBatch + (long)(KeyLength - 1) * VRowStride + ModelDim;
    public long OExtent => OOffset + ((long)Batch * QueryLength - 1) * ORowStride + ModelDim;
    /// <summary>Rows of the saved log-sum-exp: one per (batch, head, query).</summary>
    public int LseLength => Batch * Heads * QueryLength;
    /// <summary>Multiply-adds times two of the forward (Q K^T and P V), without masking savings.</summary>
    public long Flops => 4L * Batch * Heads * QueryLength * KeyLength * HeadDim;

    /// <summary>Index of the first key that query i may not see under the causal mask (KeyLength without it).</summary>
    public int KeyLimit(int i) => Causal ? Math.Clamp(i + KeyLength - QueryLength + 1, 0, KeyLength) : KeyLength;

    /// <summary>The counter of the dropout draw for weight (b, h, i, j).</summary>
    public ulong DropoutIndex(int b, int h, int i, int j) => (((ulong)b * (ulong)Heads + (ulong)h) * (ulong)QueryLength + (ulong)i) * (ulong)KeyLength + (ulong)j;

    public void Validate(string layer = "attention")
    {
        if (Batch < 0 || Heads <= 0 || QueryLength <= 0 || KeyLength <= 0 || HeadDim <= 0)
            throw new ArgumentException($"{layer}: sizes must be positive, got batch {Batch}, heads {Heads}, query length {QueryLength}, key length {KeyLength}, head dim {HeadDim}");
        if (QRowStride < ModelDim || KRowStride < ModelDim || VRowStride < ModelDim || ORowStride < ModelDim)
            throw new ArgumentException($"{layer}: row strides (Q {QRowStride}, K {KRowStride}, V {VRowStride}, O {ORowStride}) must be at least heads x head dim = {ModelDim}");
        if (QOffset < 0 || KOffset < 0 || VOffset < 0 || OOffset < 0)
            throw new ArgumentException($"{layer}: offsets must be >= 0");
        if (KBatchStride < 0 || VBatchStride < 0 || (KBatchStride > 0 && KBatchStride < (long)KeyLength * KRowStride) || (VBatchStride > 0 && VBatchStride < (long)KeyLength * VRowStride))
            throw new ArgumentException($"{layer}: K and V batch strides ({KBatchStride}, {VBatchStride}) must be 0 or hold key length {KeyLength} rows");
        if (!(DropoutP >= 0f && DropoutP < 1f)) throw new ArgumentOutOfRangeException("dropoutP", DropoutP, $"{layer}: attention dropout must be in [0, 1), got {DropoutP}");
    }

    public override string ToString() =>
        $"B={Batch} H={Heads} Lq={QueryLength} Lk={KeyLength} d={HeadDim}{(Causal ? " causal" : "")}{(DropoutP > 0 ? $" dropout {DropoutP}" : "")}";
}
