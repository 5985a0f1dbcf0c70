using static LsKd.Kernels.Validation;

namespace LsKd.Kernels;

/// <summary>Validates every op's arguments (shapes, buffer sizes, backends, hyper-parameters) and then calls the
/// backend's kernel; reads as a table: per op, a profiler scope (its label), the checks, the kernel call. Backends
/// implement only the *Core methods.</summary>
public abstract partial class BackendBase : IBackend
{
    public abstract string Name { get; }
    public abstract string DeviceDescription { get; }
    public abstract int Threads { get; }
    public abstract DeviceBuffer<float> Allocate(int length);
    public abstract DeviceBuffer<int> AllocateInt(int length);
    public abstract void Synchronize();
    public virtual void Dispose() => GC.SuppressFinalize(this);

    public override string ToString() => $"{Name} ({DeviceDescription})";

    /// <summary>Ops dispatched so far (each public op once, counted as it starts). On the ILGPU backend an op is one
    /// kernel launch, except the few that launch several (a split-K GEMM's pre-scale, centroids, QR, eigen).</summary>
    public long Dispatches { get; internal set; }

    /// <summary>Called on the calling thread as each op starts: the CPU backend sets its floating-point mode there.</summary>
    internal virtual void PrepareThread() { }

    /// <summary>Whether <see cref="Slice"/> works: buffers that are views of part of another (the ILGPU backend).</summary>
    public virtual bool SupportsSlices => false;

    /// <summary>A buffer over elements [offset, offset + length) of arena, sharing its memory and owning none of it
    /// (disposing the slice frees nothing; the arena must outlive it).</summary>
    public virtual DeviceBuffer<float> Slice(DeviceBuffer<float> arena, int offset, int length) =>
        throw new NotSupportedException($"{Name} buffers cannot be sliced");

    public void Fill(DeviceBuffer<float> x, int offset, int count, float value)
    {
        using var profile = OpProfiler.Scope(this, count < 65536 ? "Fill (under 64K values)" : "Fill (64K values or more)");
        NonNegative(offset, "offset"); NonNegative(count, "count"); Fits(this, x, (long)offset + count, "x");
        if (count > 0) FillCore(x, offset, count, value);
    }

    public void FillInt(DeviceBuffer<int> x, int offset, int count, int value)
    {
        using var profile = OpProfiler.Scope(this, "FillInt");
        NonNegative(offset, "offset"); NonNegative(count, "count"); Fits(this, x, (long)offset + count, "x");
        if (count > 0) FillIntCore(x, offset, count, value);
    }

    public void Copy(DeviceBuffer<float> source, int sourceOffset, DeviceBuffer<float> destination, int destinationOffset, int count)
    {
        using var profile = OpProfiler.Scope(this, "Copy");
        NonNegative(sourceOffset, "sourceOffset"); NonNegative(destinationOffset, "destinationOffset"); NonNegative(count, "count");
        Fits(this, source, (long)sourceOffset + count, "source"); Fits(this, destination, (long)destinationOffset + count, "destination");
        if (count > 0) CopyCore(source, sourceOffset, destination, destinationOffset, count);
    }

    public void Transpose(DeviceBuffer<float> x, DeviceBuffer<float> y, int batch, int rows, int cols)
    {
        using var profile = OpProfiler.Scope(this, "Transpose");
        NonNegative(batch, "batch"); NonNegative(rows, "rows"); NonNegative(cols, "cols");
        long n = (long)batch * rows * cols;
        Fits(this, x, n, "x"); Fits(this, y, n, "y");
        if (ReferenceEquals(x, y)) throw new ArgumentException("transpose cannot run in place (x and y are the same buffer)", nameof(y));
        if (n > 0) TransposeCore(x, y, batch, rows, cols);
    }

    public void Gemm(in GemmSpec spec, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c)
    {
        using var profile = OpProfiler.Scope(this, "Gemm");
        Validation.Gemm(this, spec, a, b, c);
        if (spec.M == 0 || spec.N == 0) return;
        GemmCore(spec, a, b, c);
    }

    public void Unary(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float scalar = 0f)
    {
        using var profile = OpProfiler.Scope(this, "Unary");
        NonNegative(count, "count"); Fits(this, x, count, "x"); Fits(this, y, count, "y");
        if (count > 0) UnaryCore(op, x, y, count, scalar);
    }

    public void UnaryBackward(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int count, float scalar = 0f, bool accumulate = false)
    {
        using var profile = OpProfiler.Scope(this, "UnaryBackward");
        NonNegative(count, "count"); Fits(this, x, count, "x"); Fits(this, dy, count, "dy"); Fits(this, dx, count, "dx");
        if (count > 0) UnaryBackwardCore(op, x, dy, dx, count, scalar, accumulate);
    }

    public void AddReluBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> da, DeviceBuffer<float> db, int count,
        bool accumulateA = false, bool accumulateB = false)
    {
        using var profile = OpProfiler.Scope(this, "AddReluBackward");
        NonNegative(count, "count"); Fits(this, y, count, "y"); Fits(this, dy, count, "dy"); Fits(this, da, count, "da"); Fits(this, db, count, "db");
        if (ReferenceEquals(da, db)) throw new ArgumentException("add-relu backward: da and db must be different buffers", nameof(db));
        if (count > 0) AddReluBackwardCore(y, dy, da, db, count, accumulateA, accumulateB);
    }

    public void Binary(BinaryOp op, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> y, int count, int bLength, int bInner = 1)
    {
        using var profile = OpProfiler.Scope(this, "Binary");
        NonNegative(count, "count"); Positive(bLength, "bLength"); Positive(bInner, "bInner");
        Fits(this, a, count, "a"); Fits(this, b, bLength, "b"); Fits(this, y, count, "y");
        if (count > 0 && count % ((long)bLength * bInner) != 0 && !(bLength == count && bInner == 1))
            throw new ArgumentException($"cannot broadcast b of length {bLength} (inner {bInner}) over a of length {count}: {count} is not a multiple of {(long)bLength * bInner}", nameof(b));
        if (count > 0) BinaryCore(op, a, b, y, count, bLength, bInner);
    }

    public void Axpby(float alpha, DeviceBuffer<float> x, float beta, DeviceBuffer<float> y, int count)
    {
        using var profile = OpProfiler.Scope(this, "Axpby");
        NonNegative(count, "count"); Fits(this, x, count, "x"); Fits(this, y, count, "y");
        if (count > 0) AxpbyCore(alpha, x, beta, y, count);
    }

    public void Reduce(ReduceOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int outer, int axis, int inner, DeviceBuffer<int>? argIndex = null)
    {
        using var profile = OpProfiler.Scope(this, "Reduce");
        NonNegative(outer, "outer"); Positive(axis, "axis"); NonNegative(inner, "inner");
        Fits(this, x, (long)outer * axis * inner, "x"); Fits(this, y, (long)outer * inner, "y");
        if (argIndex != null)
        {
            if (op != ReduceOp.Max) throw new ArgumentException($"argIndex is only produced by ReduceOp.Max, not {op}", nameof(argIndex));
            Fits(this, argIndex, (long)outer * inner, "argIndex");
        }
        if ((long)outer * inner > 0) ReduceCore(op, x, y, outer, axis, inner, argIndex);
    }

    public void InitUniform(DeviceBuffer<float> x, int count, ulong seed, float low, float high)
    {
        using var profile = OpProfiler.Scope(this, "InitUniform");
        NonNegative(count, "count"); Fits(this, x, count, "x");
        if (!(high >= low)) throw new ArgumentException($"uniform range is empty: low {low} > high {high}", nameof(high));
        if (count > 0) InitUniformCore(x, count, seed, low, high);
    }

    public void InitNormal(DeviceBuffer<float> x, int count, ulong seed, float mean, float std)
    {
        using var profile = OpProfiler.Scope(this, "InitNormal");
        NonNegative(count, "count"); Fits(this, x, count, "x");
        if (!(std >= 0f) || !float.IsFinite(std)) throw new ArgumentOutOfRangeException(nameof(std), std, $"std must be finite and >= 0, got {std}");
        if (count > 0) InitNormalCore(x, count, seed, mean, std);
    }

    public void SgdStep(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> velocity, int count, in SgdConfig config)
    {
        using var profile = OpProfiler.Scope(this, "SgdStep");
        NonNegative(count, "count"); Fits(this, parameter, count, "parameter"); Fits(this, gradient, count, "gradient"); Fits(this, velocity, count, "velocity");
        if (!(config.LearningRate >= 0f)) throw new ArgumentOutOfRangeException("learningRate", config.LearningRate, "learning rate must be >= 0");
        if (!(config.Momentum >= 0f && config.Momentum < 1f)) throw new ArgumentOutOfRangeException("momentum", config.Momentum, "momentum must be in [0, 1)");
        if (config.Nesterov && config.Momentum == 0f) throw new ArgumentException("Nesterov momentum needs momentum > 0", "nesterov");
        if (count > 0) SgdStepCore(parameter, gradient, velocity, count, config);
    }

    public void AdamWStep(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, in AdamWConfig config, int step)
    {
        using var profile = OpProfiler.Scope(this, "AdamWStep");
        NonNegative(count, "count"); Positive(step, "step");
        Fits(this, parameter, count, "parameter"); Fits(this, gradient, count, "gradient"); Fits(this, m, count, "m"); Fits(this, v, count, "v");
        config.Validate();
        if (count > 0) AdamWStepCore(parameter, gradient, m, v, count, config, step);
    }

    public void Softmax(DeviceBuffer<float> x, DeviceBuffer<float> y, int rows, int cols, float temperature, bool log)
    {
        using var profile = OpProfiler.Scope(this, "Softmax");
        RowShape(rows, cols); Temperature(temperature);
        Fits(this, x, (long)rows * cols, "x"); Fits(this, y, (long)rows * cols, "y");
        if (rows > 0) SoftmaxCore(x, y, rows, cols, temperature, log);
    }

    public void SoftmaxBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int rows, int cols, float temperature, bool log, bool accumulate)
    {
        using var profile = OpProfiler.Scope(this, "SoftmaxBackward");
        RowShape(rows, cols); Temperature(temperature);
        long n = (long)rows * cols;
        Fits(this, y, n, "y"); Fits(this, dy, n, "dy"); Fits(this, dx, n, "dx");
        if (rows > 0) SoftmaxBackwardCore(y, dy, dx, rows, cols, temperature, log, accumulate);
    }

    public void LabelSmoothingCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad,
        int rows, int cols, float alpha, float gradScale, int? ignoreLabel = null)
    {
        using var profile = OpProfiler.Scope(this, "LabelSmoothingCrossEntropy");
        RowShape(rows, cols); Alpha(alpha);
        Fits(this, logits, (long)rows * cols, "logits"); Fits(this, loss, rows, "loss");
        if (grad != null) Fits(this, grad, (long)rows * cols, "grad");
        CheckLabels(labels, rows, cols, ignoreLabel: ignoreLabel);
        if (rows > 0) LabelSmoothingCrossEntropyCore(logits, labels, loss, grad, rows, cols, alpha, gradScale, ignoreLabel ?? NoIgnore);
    }

    public void KdLoss(DeviceBuffer<float> student, DeviceBuffer<float> teacher, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad,
        int rows, int cols, in KdConfig config, float gradScale, int? ignoreLabel = null)
    {
        using var profile = OpProfiler.Scope(this, "KdLoss");
        RowShape(rows, cols); config.Validate();
        Fits(this, student, (long)rows * cols, "student"); Fits(this, teacher, (long)rows * cols, "teacher"); Fits(this, loss, rows, "loss");
        if (grad != null) Fits(this, grad, (long)rows * cols, "grad");
        CheckLabels(labels, rows, cols, ignoreLabel: ignoreLabel);
        if (rows > 0) KdLossCore(student, teacher, labels, loss, grad, rows, cols, config, gradScale, ignoreLabel ?? NoIgnore);
    }

    public void Entropy(DeviceBuffer<float> logits, DeviceBuffer<float> entropy, int rows, int cols, float temperature)
    {
        using var profile = OpProfiler.Scope(this, "Entropy");
        RowShape(rows, cols); Temperature(temperature);
        Fits(this, logits, (long)rows * cols, "logits"); Fits(this, entropy, rows, "entropy");
        if (rows > 0) EntropyCore(logits, entropy, rows, cols, temperature);
    }

    public void TopKCorrect(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<int> correct, int rows, int cols, int k)
    {
        using var profile = OpProfiler.Scope(this, "TopKCorrect");
        RowShape(rows, cols);
        if (k < 1 || k > cols) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in [1, {cols}], got {k}");
        Fits(this, logits, (long)rows * cols, "logits"); Fits(this, correct, rows, "correct");
        CheckLabels(labels, rows, cols);
        if (rows > 0) TopKCorrectCore(logits, labels, correct, rows, cols, k);
    }

    public void ConfusionMatrix(DeviceBuffer<int> predictions, DeviceBuffer<int> labels, DeviceBuffer<int> matrix, int count, int classes)
    {
        using var profile = OpProfiler.Scope(this, "ConfusionMatrix");
        NonNegative(count, "count"); Positive(classes, "classes");
        Fits(this, predictions, count, "predictions"); Fits(this, matrix, (long)classes * classes, "matrix");
        CheckLabels(labels, count, classes);
        CheckLabels(predictions, count, classes, "predictions");
        if (count > 0) ConfusionMatrixCore(predictions, labels, matrix, count, classes);
    }

    string ConvLabel(string op, in ConvSpec spec, ConvPass pass)
    {
        string algorithm = ConvAlgorithmLabel(spec, pass);
        return $"{op} {spec.C}->{spec.K} {spec.R}x{spec.S}/{spec.Stride}{(spec.IsDepthwise ? " dw" : "")} at {spec.H}x{spec.W}" + (algorithm.Length > 0 ? $" [{algorithm}]" : "");
    }

    /// <summary>The name of the algorithm this backend runs for a convolution pass (profiler labels); "" if it has one only.</summary>
    protected virtual string ConvAlgorithmLabel(in ConvSpec spec, ConvPass pass) => "";

    public void Conv2d(in ConvSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y, DeviceBuffer<float>? channelStats = null)
    {
        spec.Validate();   // before the label: the plan behind it assumes a valid shape
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? ConvLabel(channelStats == null ? "Conv2d" : "Conv2d+stats", spec, ConvPass.Forward) : "");
        Fits(this, x, spec.InputSize, "x"); Fits(this, weight, spec.WeightSize, "weight"); Fits(this, y, spec.OutputSize, "y");
        if (channelStats != null)
        {
            Fits(this, channelStats, 2L * spec.K, "channelStats");
            if ((long)spec.N * spec.OutH * spec.OutW < 1) throw new ArgumentException("conv2d: channel statistics need at least one output value per channel", nameof(channelStats));
        }
        if (spec.N > 0) Conv2dCore(spec, x, weight, y, channelStats);
    }

    public void Conv2dBackwardInput(in ConvSpec spec, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate)
    {
        spec.Validate();   // before the label: the plan behind it assumes a valid shape
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? ConvLabel("Conv2dBackwardInput", spec, ConvPass.InputGrad) : "");
        Fits(this, dy, spec.OutputSize, "dy"); Fits(this, weight, spec.WeightSize, "weight"); Fits(this, dx, spec.InputSize, "dx");
        if (spec.N > 0) Conv2dBackwardInputCore(spec, dy, weight, dx, accumulate);
    }

    public void Conv2dBackwardWeight(in ConvSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate)
    {
        spec.Validate();   // before the label: the plan behind it assumes a valid shape
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? ConvLabel("Conv2dBackwardWeight", spec, ConvPass.WeightGrad) : "");
        Fits(this, x, spec.InputSize, "x"); Fits(this, dy, spec.OutputSize, "dy"); Fits(this, dw, spec.WeightSize, "dw");
        if (spec.N > 0) Conv2dBackwardWeightCore(spec, x, dy, dw, accumulate);
        else if (!accumulate) Fill(dw, 0, (int)spec.WeightSize, 0f);
    }

    public void BatchNorm(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training,
        DeviceBuffer<float>? channelStats = null)
    {
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? $"BatchNorm {spec.C} x {spec.Spatial}{(spec.Activation == NormActivation.None ? "" : " + " + spec.Activation)}" : "");
        CheckBatchNorm(spec, training);
        Fits(this, x, spec.Size, "x"); Fits(this, y, spec.Size, "y");
        Fits(this, gamma, spec.C, "gamma"); Fits(this, beta, spec.C, "beta"); Fits(this, saveMean, spec.C, "saveMean"); Fits(this, saveInvStd, spec.C, "saveInvStd");
        Fits(this, runningMean, spec.C, "runningMean"); Fits(this, runningVar, spec.C, "runningVar");
        if (channelStats != null) Fits(this, channelStats, 2L * spec.C, "channelStats");
        if (spec.Size > 0) BatchNormCore(spec, x, gamma, beta, y, saveMean, saveInvStd, runningMean, runningVar, training, training ? channelStats : null);
    }

    public void BatchNormBackward(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta,
        bool training, bool accumulate, DeviceBuffer<float>? beta = null)
    {
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? $"BatchNormBackward {spec.C} x {spec.Spatial}{(spec.Activation == NormActivation.None ? "" : " + " + spec.Activation)}" : "");
        CheckBatchNorm(spec, training);
        Fits(this, x, spec.Size, "x"); Fits(this, dy, spec.Size, "dy"); Fits(this, dx, spec.Size, "dx");
        Fits(this, gamma, spec.C, "gamma"); Fits(this, saveMean, spec.C, "saveMean"); Fits(this, saveInvStd, spec.C, "saveInvStd");
        Fits(this, dGamma, spec.C, "dGamma"); Fits(this, dBeta, spec.C, "dBeta");
        if (spec.Activation != NormActivation.None)
        {
            if (beta == null) throw new ArgumentException($"batch-norm backward with a fused {spec.Activation} needs beta (the mask is recomputed from x)", nameof(beta));
            Fits(this, beta, spec.C, "beta");
        }
        if (spec.Size > 0) BatchNormBackwardCore(spec, x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, training, accumulate, beta);
    }

    public void BatchNormAddRelu(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> residual,
        DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar,
        bool training, DeviceBuffer<float>? channelStats = null)
    {
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? $"BatchNorm {spec.C} x {spec.Spatial} + AddRelu" : "");
        CheckBatchNorm(spec, training);
        CheckNoActivation(spec);
        Fits(this, x, spec.Size, "x"); Fits(this, residual, spec.Size, "residual"); Fits(this, y, spec.Size, "y");
        Fits(this, gamma, spec.C, "gamma"); Fits(this, beta, spec.C, "beta"); Fits(this, saveMean, spec.C, "saveMean"); Fits(this, saveInvStd, spec.C, "saveInvStd");
        Fits(this, runningMean, spec.C, "runningMean"); Fits(this, runningVar, spec.C, "runningVar");
        if (channelStats != null) Fits(this, channelStats, 2L * spec.C, "channelStats");
        if (spec.Size > 0) BatchNormAddReluCore(spec, x, gamma, beta, residual, y, saveMean, saveInvStd, runningMean, runningVar, training, training ? channelStats : null);
    }

    public void BatchNormAddReluBackward(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dResidual, DeviceBuffer<float> dGamma,
        DeviceBuffer<float> dBeta, bool training, bool accumulateDx, bool accumulateResidual)
    {
        using var profile = OpProfiler.Scope(this, OpProfiler.Enabled ? $"BatchNormBackward {spec.C} x {spec.Spatial} + AddRelu" : "");
        CheckBatchNorm(spec, training);
        CheckNoActivation(spec);
        Fits(this, x, spec.Size, "x"); Fits(this, y, spec.Size, "y"); Fits(this, dy, spec.Size, "dy"); Fits(this, dx, spec.Size, "dx");
        Fits(this, dResidual, spec.Size, "dResidual");
        Fits(this, gamma, spec.C, "gamma"); Fits(this, saveMean, spec.C, "saveMean"); Fits(this, saveInvStd, spec.C, "saveInvStd");
        Fits(this, dGamma, spec.C, "dGamma"); Fits(this, dBeta, spec.C, "dBeta");
        if (spec.Size > 0) BatchNormAddReluBackwardCore(spec, x, y, dy, gamma, saveMean, saveInvStd, dx, dResidual, dGamma, dBeta, training, accumulateDx, accumulateResidual);
    }

    static void CheckNoActivation(in BatchNormSpec s)
    {
        if (s.Activation != NormActivation.None)
            throw new ArgumentException($"batch-norm + add-relu: the activation is the ReLU after the sum; spec.Activation must be None, got {s.Activation}");
    }

    /// <summary>The composed form, for backends without a fused kernel: batch norm into y, then y = relu(y + residual).</summary>
    protected virtual void BatchNormAddReluCore(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> residual,
        DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar,
        bool training, DeviceBuffer<float>? channelStats)
    {
        BatchNormCore(spec, x, gamma, beta, y, saveMean, saveInvStd, runningMean, runningVar, training, channelStats);
        BinaryCore(BinaryOp.AddRelu, y, residual, y, (int)spec.Size, (int)spec.Size, 1);
    }

    /// <summary>The composed form: the add-relu backward into a scratch gradient and dResidual, then the batch-norm
    /// backward of the scratch.</summary>
    protected virtual void BatchNormAddReluBackwardCore(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dResidual, DeviceBuffer<float> dGamma,
        DeviceBuffer<float> dBeta, bool training, bool accumulateDx, bool accumulateResidual)
    {
        using var g = Allocate((int)spec.Size);
        AddReluBackwardCore(y, dy, g, dResidual, (int)spec.Size, false, accumulateResidual);
        BatchNormBackwardCore(spec, x, g, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, training, accumulateDx, null);
    }

    static void CheckBatchNorm(in BatchNormSpec s, bool training)
    {
        NonNegative(s.N, "N"); Positive(s.C, "channels"); Positive(s.Spatial, "spatial");
        if (!(s.Epsilon > 0f)) throw new ArgumentOutOfRangeException("epsilon", s.Epsilon, $"batch-norm epsilon must be > 0, got {s.Epsilon}");
        if (!(s.Momentum >= 0f && s.Momentum <= 1f)) throw new ArgumentOutOfRangeException("momentum", s.Momentum, $"batch-norm momentum must be in [0, 1], got {s.Momentum}");
        if (training && (long)s.N * s.Spatial < 2)
            throw new ArgumentException($"batch-norm in training needs more than one value per channel, got batch {s.N} x spatial {s.Spatial}");
    }

    public void Pool2d(in PoolSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<int>? argMax)
    {
        using var profile = OpProfiler.Scope(this, "Pool2d");
        spec.Validate();
        Fits(this, x, spec.InputSize, "x"); Fits(this, y, spec.OutputSize, "y");
        if (argMax != null)
        {
            if (spec.Op != PoolOp.Max) throw new ArgumentException("argMax is only produced by max pooling", nameof(argMax));
            Fits(this, argMax, spec.OutputSize, "argMax");
        }
        if (spec.N > 0) Pool2dCore(spec, x, y, argMax);
    }

    public void Pool2dBackward(in PoolSpec spec, DeviceBuffer<float> dy, DeviceBuffer<int>? argMax, DeviceBuffer<float> dx, bool accumulate)
    {
        using var profile = OpProfiler.Scope(this, "Pool2dBackward");
        spec.Validate();
        Fits(this, dy, spec.OutputSize, "dy"); Fits(this, dx, spec.InputSize, "dx");
        if (spec.Op == PoolOp.Max)
        {
            if (argMax == null) throw new ArgumentException("max-pool backward needs the argMax of the forward pass", nameof(argMax));
            Fits(this, argMax, spec.OutputSize, "argMax");
        }
        if (spec.N > 0) Pool2dBackwardCore(spec, dy, argMax, dx, accumulate);
    }

    public void Dropout(DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float p, ulong seed)
    {
        using var profile = OpProfiler.Scope(this, "Dropout");
        NonNegative(count, "count"); Fits(this, x, count, "x"); Fits(this, y, count, "y");
        if (!(p >= 0f && p < 1f)) throw new ArgumentOutOfRangeException("p", p, $"dropout probability must be in [0, 1), got {p}");
        if (count > 0) DropoutCore(x, y, count, p, seed);
    }

    public void ClassCentroids(DeviceBuffer<float> features, DeviceBuffer<int> labels, DeviceBuffer<float> centroids, int count, int dim, int classes)
    {
        using var profile = OpProfiler.Scope(this, "ClassCentroids");
        NonNegative(count, "count"); Positive(dim, "dim"); Positive(classes, "classes");
        Fits(this, features, (long)count * dim, "features"); Fits(this, centroids, (long)classes * dim, "centroids");
        CheckLabels(labels, count, classes);
        ClassCentroidsCore(features, labels, centroids, count, dim, classes);
    }

    public void PairwiseDistances(DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> distances, int m, int n, int dim)
    {
        using var profile = OpProfiler.Scope(this, "PairwiseDistances");
        NonNegative(m, "m"); NonNegative(n, "n"); Positive(dim, "dim");
        Fits(this, a, (long)m * dim, "a"); Fits(this, b, (long)n * dim, "b"); Fits(this, distances, (long)m * n, "distances");
        if ((long)m * n > 0) PairwiseDistancesCore(a, b, distances, m, n, dim);
    }

    public void HouseholderQr(DeviceBuffer<float> a, DeviceBuffer<float> q, DeviceBuffer<float> r, int m, int n)
    {
        using var profile = OpProfiler.Scope(this, "HouseholderQr");
        Positive(n, "n");
        if (m < n) throw new ArgumentOutOfRangeException(nameof(m), m, $"QR needs a tall matrix: m = {m} rows < n = {n} columns");
        Fits(this, a, (long)m * n, "a"); Fits(this, q, (long)m * n, "q"); Fits(this, r, (long)n * n, "r");
        HouseholderQrCore(a, q, r, m, n);
    }

    /// <summary>Built from other ops (a column reduction, a broadcast subtract and one transposed GEMM), so every
    /// backend gets it from kernels that are already checked.</summary>
    public void Covariance(DeviceBuffer<float> x, DeviceBuffer<float> mean, DeviceBuffer<float> cov, int n, int d)
    {
        using var profile = OpProfiler.Scope(this, "Covariance");
        if (n < 2) throw new ArgumentOutOfRangeException(nameof(n), n, $"covariance needs at least 2 rows, got {n}");
        Positive(d, "d");
        Fits(this, x, (long)n * d, "x"); Fits(this, mean, d, "mean"); Fits(this, cov, (long)d * d, "cov");
        Reduce(ReduceOp.Mean, x, mean, 1, n, d);
        using var centred = Allocate(checked(n * d));
        Binary(BinaryOp.Sub, x, mean, centred, n * d, d);
        Gemm(new GemmSpec(TransA: true, TransB: false, M: d, N: d, K: n, Alpha: 1f / (n - 1)), centred, centred, cov);
    }

    public void SymmetricEigen(DeviceBuffer<float> a, DeviceBuffer<float> eigenvalues, DeviceBuffer<float> eigenvectors, int d)
    {
        using var profile = OpProfiler.Scope(this, "SymmetricEigen");
        Positive(d, "d");
        Fits(this, a, (long)d * d, "a"); Fits(this, eigenvalues, d, "eigenvalues"); Fits(this, eigenvectors, (long)d * d, "eigenvectors");
        SymmetricEigenCore(a, eigenvalues, eigenvectors, d);
        // Order and sign on the host: d + d^2 values, small next to the O(d^3) rotations.
        var values = eigenvalues.ToArray().AsSpan(0, d).ToArray();
        var vectors = eigenvectors.ToArray().AsSpan(0, d * d).ToArray();
        var (sortedValues, sortedVectors) = EigenOrder.SortAndSign(values, vectors, d);
        eigenvalues.Upload(sortedValues);
        eigenvectors.Upload(sortedVectors);
    }

    static void RowShape(int rows, int cols)
    {
        NonNegative(rows, "rows"); Positive(cols, "cols");
    }

    /// <summary>Labels are device data; reading back rows ints is cheap next to the kernels that use them and
    /// turns an out-of-range label into a clear error instead of a wild memory access.</summary>
    void CheckLabels(DeviceBuffer<int> labels, int rows, int cols, string name = "labels", int? ignoreLabel = null)
    {
        Fits(this, labels, rows, name);
        var host = ReadInts(labels, rows);
        for (int i = 0; i < rows; i++)
            if ((uint)host[i] >= (uint)cols && host[i] != ignoreLabel)
                throw new ArgumentOutOfRangeException(name, host[i], $"{name}[{i}] = {host[i]} is outside [0, {cols}){(ignoreLabel is { } ig ? $" and is not the ignored label {ig}" : "")}");
    }

    /// <summary>The ignore label the kernels see when no row is ignored: no label can equal it after validation.</summary>
    protected const int NoIgnore = int.MinValue;

    protected virtual ReadOnlySpan<int> ReadInts(DeviceBuffer<int> buffer, int count)
    {
        var host = new int[count];
        buffer.Download(host);
        return host;
    }

    protected abstract void FillCore(DeviceBuffer<float> x, int offset, int count, float value);
    protected abstract void FillIntCore(DeviceBuffer<int> x, int offset, int count, int value);
    protected abstract void CopyCore(DeviceBuffer<float> source, int sourceOffset, DeviceBuffer<float> destination, int destinationOffset, int count);
    protected abstract void TransposeCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int batch, int rows, int cols);
    protected abstract void GemmCore(in GemmSpec spec, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c);
    protected abstract void UnaryCore(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float scalar);
    protected abstract void UnaryBackwardCore(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int count, float scalar, bool accumulate);
    protected abstract void AddReluBackwardCore(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> da, DeviceBuffer<float> db, int count,
        bool accumulateA, bool accumulateB);
    protected abstract void BinaryCore(BinaryOp op, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> y, int count, int bLength, int bInner);
    protected abstract void AxpbyCore(float alpha, DeviceBuffer<float> x, float beta, DeviceBuffer<float> y, int count);
    protected abstract void ReduceCore(ReduceOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int outer, int axis, int inner, DeviceBuffer<int>? argIndex);
    protected abstract void InitUniformCore(DeviceBuffer<float> x, int count, ulong seed, float low, float high);
    protected abstract void InitNormalCore(DeviceBuffer<float> x, int count, ulong seed, float mean, float std);
    protected abstract void SgdStepCore(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> velocity, int count, in SgdConfig config);
    protected abstract void AdamWStepCore(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, in AdamWConfig config, int step);
    protected abstract void SoftmaxCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int rows, int cols, float temperature, bool log);
    protected abstract void SoftmaxBackwardCore(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int rows, int cols, float temperature, bool log, bool accumulate);
    protected abstract void LabelSmoothingCrossEntropyCore(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad, int rows, int cols, float alpha, float gradScale, int ignoreLabel);
    protected abstract void KdLossCore(DeviceBuffer<float> student, DeviceBuffer<float> teacher, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad, int rows, int cols, in KdConfig config, float gradScale, int ignoreLabel);
    protected abstract void EntropyCore(DeviceBuffer<float> logits, DeviceBuffer<float> entropy, int rows, int cols, float temperature);
    protected abstract void TopKCorrectCore(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<int> correct, int rows, int cols, int k);
    protected abstract void Conv2dCore(in ConvSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y, DeviceBuffer<float>? channelStats);
    protected abstract void Conv2dBackwardInputCore(in ConvSpec spec, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate);
    protected abstract void Conv2dBackwardWeightCore(in ConvSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate);
    protected abstract void BatchNormCore(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training, DeviceBuffer<float>? channelStats);
    protected abstract void BatchNormBackwardCore(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool training, bool accumulate,
        DeviceBuffer<float>? beta);
    protected abstract void Pool2dCore(in PoolSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<int>? argMax);
    protected abstract void Pool2dBackwardCore(in PoolSpec spec, DeviceBuffer<float> dy, DeviceBuffer<int>? argMax, DeviceBuffer<float> dx, bool accumulate);
    protected abstract void DropoutCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float p, ulong seed);
    protected abstract void ClassCentroidsCore(DeviceBuffer<float> features, DeviceBuffer<int> labels, DeviceBuffer<float> centroids, int count, int dim, int classes);
    protected abstract void PairwiseDistancesCore(DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> distances, int m, int n, int dim);
    protected abstract void HouseholderQrCore(DeviceBuffer<float> a, DeviceBuffer<float> q, DeviceBuffer<float> r, int m, int n);
    /// <summary>Unordered eigenpairs: eigenvalues[k] and row k of eigenvectors; the caller orders and signs them.</summary>
    protected abstract void SymmetricEigenCore(DeviceBuffer<float> a, DeviceBuffer<float> eigenvalues, DeviceBuffer<float> eigenvectors, int d);
    protected abstract void ConfusionMatrixCore(DeviceBuffer<int> predictions, DeviceBuffer<int> labels, DeviceBuffer<int> matrix, int count, int classes);
}
