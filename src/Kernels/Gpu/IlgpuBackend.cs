using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;
using IView = ILGPU.Runtime.ArrayView1D<int, ILGPU.Stride1D.Dense>;

/// <summary>The ILGPU backend: CUDA on an NVIDIA GPU, or ILGPU's CPU accelerator (a slow emulator for kernel
/// debugging and tests). Each kernel is compiled once per accelerator, on first use, and the delegate cached.</summary>
public sealed partial class IlgpuBackend : BackendBase
{
    readonly Context _context;
    readonly int _rowGroup, _normGroup, _gemmTile;

    Action<Index1D, FView, int, float>? _fill;
    Action<Index1D, IView, int, int>? _fillInt;
    Action<Index1D, FView, FView, int, int>? _transpose;
    Action<Index1D, FView, FView, int, float>? _unary;
    Action<Index1D, FView, FView, FView, int, float, int>? _unaryBackward;
    Action<Index1D, FView, FView, FView, FView, int, int>? _addReluBackward;
    Action<Index1D, FView, FView, FView, int, int, int>? _binary;
    Action<Index1D, FView, FView, float, float>? _axpby;
    Action<Index1D, FView, FView, IView, int, int, int, int>? _reduceStrided;
    Action<KernelConfig, FView, FView, int, int>? _reduceRows;
    Action<Index1D, FView, ulong, float, float>? _initUniform, _initNormal;
    Action<Index1D, FView, FView, FView, OptParams>? _sgd;
    Action<Index1D, FView, FView, FView, FView, OptParams>? _adamW;
    Action<KernelConfig, GemmParams, FView, FView, FView>? _gemm;
    Action<KernelConfig, FView, FView, RowParams>? _softmax, _entropy;
    Action<KernelConfig, FView, FView, FView, RowParams>? _softmaxBackward;
    Action<KernelConfig, FView, IView, FView, FView, RowParams>? _labelSmoothing;
    Action<KernelConfig, FView, FView, IView, FView, FView, RowParams>? _kd;
    Action<Index1D, FView, IView, IView, int, int>? _topK;
    Action<Index1D, IView, IView, IView, int>? _confusion;
    Action<Index1D, FView, FView, FView, ConvParams>? _convForward, _convBackwardInput;
    Action<KernelConfig, FView, FView, FView, ConvParams>? _convBackwardWeight;
    Action<KernelConfig, FView, FView, FView, FView, FView, FView, FView, FView, FView, NormParams, int>? _batchNorm;
    Action<KernelConfig, FView, FView, NormParams>? _channelStats;
    Action<KernelConfig, FView, FView, FView, FView, FView, FView, FView, FView, FView, NormParams>? _batchNormBackward;
    Action<Index1D, FView, FView, IView, PoolParams, int>? _pool;
    Action<Index1D, FView, IView, FView, PoolParams>? _poolBackward;
    Action<Index1D, FView, FView, float, ulong>? _dropout;
    Action<Index1D, FView, IView, FView, int, int>? _centroids;
    Action<KernelConfig, FView, IView, FView, FView, int, int, int, int>? _centroidSums;
    Action<Index1D, FView, FView, int>? _centroidDivide;
    Action<Index1D, FView, FView, FView, int, int>? _distances;

    IlgpuBackend(Context context, Accelerator accelerator, string name)
    {
        _context = context;
        Accelerator = accelerator;
        Name = name;
        int maxGroup = accelerator.MaxNumThreadsPerGroup;
        _rowGroup = LargestPowerOfTwoAtMost(Math.Min(256, maxGroup));
        // Batch norm runs one group per channel, and layers have only 16 to 64 channels: the largest groups keep
        // enough loads in flight per multiprocessor.
        _normGroup = LargestPowerOfTwoAtMost(Math.Min(1024, maxGroup));
        // GEMM tile: 16 x 16 = 256 threads where allowed, smaller on emulated devices with small groups.
        _gemmTile = 16;
        while (_gemmTile > 1 && _gemmTile * _gemmTile > maxGroup) _gemmTile /= 2;
    }

    /// <summary>CUDA on the first NVIDIA GPU; throws a clear error when none is present.</summary>
    public static IlgpuBackend CreateCuda()
    {
        var context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
        var devices = context.GetCudaDevices();
        if (devices.Count == 0)
        {
            context.Dispose();
            throw new InvalidOperationException("device 'cuda' requested but no NVIDIA GPU with a CUDA driver was found");
        }
        return new IlgpuBackend(context, devices[0].CreateAccelerator(context), "cuda");
    }

    public static bool CudaAvailable()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception) { return false; }
    }

    /// <summary>ILGPU's CPU accelerator. Group size = warpSize x warpsPerGroup lets tests simulate the small groups
    /// of the emulator and larger GPU-like groups.</summary>
    public static IlgpuBackend CreateCpuEmulator(int warpSize = 4, int warpsPerGroup = 16, int multiprocessors = 1)
    {
        var device = new CPUDevice(warpSize, warpsPerGroup, multiprocessors);
        var context = Context.Create(b => b.CPU(device).EnableAlgorithms());
        var accelerator = context.GetCPUDevice(0).CreateCPUAccelerator(context);
        return new IlgpuBackend(context, accelerator, "ilgpu-cpu");
    }

    public Accelerator Accelerator { get; }
    public override string Name { get; }
    public override int Threads => 1;
    public int RowGroupSize => _rowGroup;
    public int GemmTile => _gemmTile;
    public override string DeviceDescription =>
        $"{Accelerator.Name} ({Accelerator.AcceleratorType}, {Accelerator.MemorySize / (1024 * 1024)} MiB, group {_rowGroup}, GEMM tile {_gemmTile})";

    public override DeviceBuffer<float> Allocate(int length) => new IlgpuBuffer<float>(this, length);
    public override DeviceBuffer<int> AllocateInt(int length) => new IlgpuBuffer<int>(this, length);
    public override bool SupportsSlices => true;

    public override DeviceBuffer<float> Slice(DeviceBuffer<float> arena, int offset, int length)
    {
        if (arena is not IlgpuBuffer<float> owner || owner.Backend != this) throw new ArgumentException("the arena must be a buffer of this backend", nameof(arena));
        if (offset < 0 || length < 0 || (long)offset + length > arena.Length)
            throw new ArgumentOutOfRangeException(nameof(length), $"slice [{offset}, {offset + (long)length}) outside a buffer of {arena.Length}");
        return new IlgpuBuffer<float>(this, length == 0 ? default : owner.View.SubView(offset, length), owner.Offset + offset);
    }
    public override void Synchronize() => Accelerator.Synchronize();

    /// <summary>The measured FMA ceiling in GFLOP/s: every multiprocessor full of threads running register-only FMA
    /// chains (<see cref="IlgpuKernels.FmaPeak"/>), best of a few timed launches after a warm-up.</summary>
    public double MeasureFmaPeak(double seconds)
    {
        bool cuda = Accelerator.AcceleratorType == AcceleratorType.Cuda;
        int threads = cuda ? Accelerator.NumMultiprocessors * Accelerator.MaxNumThreadsPerMultiprocessor : 1024;
        int iterations = cuda ? 8192 : 64;   // the CPU accelerator emulates every thread
        var kernel = Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, int, float, float>(IlgpuKernels.FmaPeak);
        using var y = Accelerator.Allocate1D<float>(threads);
        kernel(threads, y.View, iterations, 0.999f, 1e-3f);
        Accelerator.Synchronize();
        double best = double.MaxValue;
        var total = System.Diagnostics.Stopwatch.StartNew();
        for (int run = 0; run < 3 || (total.Elapsed.TotalSeconds < seconds && run < 100); run++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            kernel(threads, y.View, iterations, 0.999f, 1e-3f);
            Accelerator.Synchronize();
            best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return 16.0 * threads * iterations / best / 1e9;
    }

    public override void Dispose()
    {
        Accelerator.Synchronize();
        DisposeLinalgWorkspace();
        Accelerator.Dispose();
        _context.Dispose();
        base.Dispose();
    }

    static int LargestPowerOfTwoAtMost(int n)
    {
        int p = 1;
        while (p * 2 <= n) p *= 2;
        return p;
    }

    static FView V(DeviceBuffer<float>? b) => b == null ? default : ((IlgpuBuffer<float>)b).View;
    static IView V(DeviceBuffer<int>? b) => b == null ? default : ((IlgpuBuffer<int>)b).View;
    KernelConfig RowConfig(int rows) => new(new Index1D(rows), new Index1D(_rowGroup));

    Action<Index1D, T1, T2, T3, T4> Auto<T1, T2, T3, T4>(ref Action<Index1D, T1, T2, T3, T4>? cache, Action<Index1D, T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct
        => cache ??= Accelerator.LoadAutoGroupedStreamKernel(kernel);

    protected override void FillCore(DeviceBuffer<float> x, int offset, int count, float value) =>
        (_fill ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, int, float>(IlgpuKernels.Fill))(count, V(x), offset, value);

    protected override void FillIntCore(DeviceBuffer<int> x, int offset, int count, int value) =>
        (_fillInt ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, IView, int, int>(IlgpuKernels.FillInt))(count, V(x), offset, value);

    protected override void CopyCore(DeviceBuffer<float> source, int sourceOffset, DeviceBuffer<float> destination, int destinationOffset, int count) =>
        V(source).SubView(sourceOffset, count).CopyTo(V(destination).SubView(destinationOffset, count));

    protected override void TransposeCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int batch, int rows, int cols) =>
        (_transpose ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, int, int>(IlgpuKernels.Transpose))(batch * rows * cols, V(x), V(y), rows, cols);

    protected override void GemmCore(in GemmSpec s, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c)
    {
        var kernel = ChooseGemmKernel(s.M, s.N, s.K);
        if (kernel != GpuGemmKernel.Simple) { TiledGemm(s, kernel, a, b, c); return; }
        _gemm ??= Accelerator.LoadStreamKernel<GemmParams, FView, FView, FView>(IlgpuKernels.Gemm);
        int t = _gemmTile;
        var p = new GemmParams(s.TransA ? 1 : 0, s.TransB ? 1 : 0, s.M, s.N, s.K, s.Alpha, s.Beta,
            s.StrideA, s.StrideB, s.StrideC, s.OffsetA, s.OffsetB, s.OffsetC, t, s.LdA, s.LdB, s.LdC, s.Heads, s.HeadStrideA, s.HeadStrideB, s.HeadStrideC);
        var config = new KernelConfig(new Index3D((s.N + t - 1) / t, (s.M + t - 1) / t, s.Matrices), new Index3D(t, t, 1),
            SharedMemoryConfig.RequestDynamic<float>(2 * t * t));
        _gemm(config, p, V(a), V(b), V(c));
    }

    protected override void UnaryCore(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float scalar) =>
        Auto(ref _unary, IlgpuKernels.Unary)(count, V(x), V(y), (int)op, scalar);

    protected override void UnaryBackwardCore(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int count, float scalar, bool accumulate) =>
        (_unaryBackward ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, int, float, int>(IlgpuKernels.UnaryBackward))
            (count, V(x), V(dy), V(dx), (int)op, scalar, accumulate ? 1 : 0);

    protected override void AddReluBackwardCore(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> da, DeviceBuffer<float> db, int count,
        bool accumulateA, bool accumulateB) =>
        (_addReluBackward ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, FView, int, int>(IlgpuKernels.AddReluBackward))
            (count, V(y), V(dy), V(da), V(db), accumulateA ? 1 : 0, accumulateB ? 1 : 0);

    protected override void BinaryCore(BinaryOp op, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> y, int count, int bLength, int bInner) =>
        (_binary ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, int, int, int>(IlgpuKernels.Binary))
            (count, V(a), V(b), V(y), (int)op, bLength, bInner);

    protected override void AxpbyCore(float alpha, DeviceBuffer<float> x, float beta, DeviceBuffer<float> y, int count) =>
        Auto(ref _axpby, IlgpuKernels.Axpby)(count, V(x), V(y), alpha, beta);

    protected override void ReduceCore(ReduceOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int outer, int axis, int inner, DeviceBuffer<int>? argIndex)
    {
        if (inner == 1 && argIndex == null)
        {
            (_reduceRows ??= Accelerator.LoadStreamKernel<FView, FView, int, int>(IlgpuKernels.ReduceRows))(RowConfig(outer), V(x), V(y), (int)op, axis);
            return;
        }
        (_reduceStrided ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, IView, int, int, int, int>(IlgpuKernels.ReduceStrided))
            (outer * inner, V(x), V(y), V(argIndex), (int)op, axis, inner, argIndex == null ? 0 : 1);
    }

    protected override void InitUniformCore(DeviceBuffer<float> x, int count, ulong seed, float low, float high) =>
        Auto(ref _initUniform, IlgpuKernels.InitUniform)(count, V(x), seed, low, high);

    protected override void InitNormalCore(DeviceBuffer<float> x, int count, ulong seed, float mean, float std) =>
        Auto(ref _initNormal, IlgpuKernels.InitNormal)(count, V(x), seed, mean, std);

    protected override void SgdStepCore(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> velocity, int count, in SgdConfig c) =>
        Auto(ref _sgd, IlgpuKernels.Sgd)(count, V(parameter), V(gradient), V(velocity),
            new OptParams(c.LearningRate, 0f, 0f, 0f, c.WeightDecay, c.Momentum, c.Nesterov ? 1 : 0, 1f, 1f));

    protected override void AdamWStepCore(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, in AdamWConfig c, int step) =>
        (_adamW ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, FView, OptParams>(IlgpuKernels.AdamW))
            (count, V(parameter), V(gradient), V(m), V(v),
             new OptParams(c.LearningRate, c.Beta1, c.Beta2, c.Epsilon, c.WeightDecay, 0f, 0, 1f - MathF.Pow(c.Beta1, step), 1f - MathF.Pow(c.Beta2, step)));

    static RowParams Row(int rows, int cols, float temperature = 1f, float alpha = 0f, float beta = 0f, float scale = 0f, bool flag = false, bool hasGrad = false, int ignore = NoIgnore) =>
        new(rows, cols, 1f / temperature, temperature, alpha, beta, scale, flag ? 1 : 0, hasGrad ? 1 : 0, ignore);

    protected override void SoftmaxCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int rows, int cols, float temperature, bool log) =>
        (_softmax ??= Accelerator.LoadStreamKernel<FView, FView, RowParams>(IlgpuKernels.Softmax))(RowConfig(rows), V(x), V(y), Row(rows, cols, temperature, flag: log));

    protected override void SoftmaxBackwardCore(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int rows, int cols, float temperature, bool log, bool accumulate) =>
        (_softmaxBackward ??= Accelerator.LoadStreamKernel<FView, FView, FView, RowParams>(IlgpuKernels.SoftmaxBackward))
            (RowConfig(rows), V(y), V(dy), V(dx), Row(rows, cols, temperature, flag: log, hasGrad: accumulate));

    protected override void LabelSmoothingCrossEntropyCore(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad, int rows, int cols, float alpha, float gradScale, int ignoreLabel) =>
        (_labelSmoothing ??= Accelerator.LoadStreamKernel<FView, IView, FView, FView, RowParams>(IlgpuKernels.LabelSmoothing))
            (RowConfig(rows), V(logits), V(labels), V(loss), V(grad), Row(rows, cols, alpha: alpha, scale: gradScale, hasGrad: grad != null, ignore: ignoreLabel));

    protected override void KdLossCore(DeviceBuffer<float> student, DeviceBuffer<float> teacher, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad, int rows, int cols, in KdConfig c, float gradScale, int ignoreLabel) =>
        (_kd ??= Accelerator.LoadStreamKernel<FView, FView, IView, FView, FView, RowParams>(IlgpuKernels.Kd))
            (RowConfig(rows), V(student), V(teacher), V(labels), V(loss), V(grad), Row(rows, cols, c.Temperature, c.Alpha, c.Beta, gradScale, hasGrad: grad != null, ignore: ignoreLabel));

    protected override void EntropyCore(DeviceBuffer<float> logits, DeviceBuffer<float> entropy, int rows, int cols, float temperature) =>
        (_entropy ??= Accelerator.LoadStreamKernel<FView, FView, RowParams>(IlgpuKernels.Entropy))(RowConfig(rows), V(logits), V(entropy), Row(rows, cols, temperature));

    protected override void TopKCorrectCore(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<int> correct, int rows, int cols, int k) =>
        (_topK ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, IView, IView, int, int>(IlgpuKernels.TopK))(rows, V(logits), V(labels), V(correct), cols, k);

    protected override void Conv2dCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y, DeviceBuffer<float>? channelStats)
    {
        if (ChooseConvKernel(s, ConvPass.Forward) == GpuConvKernel.ImplicitGemm) ImplicitConvForward(s, x, weight, y);
        else Auto(ref _convForward, IlgpuConvKernels.ConvForward)((int)s.OutputSize, V(x), V(weight), V(y), ConvParams.From(s));
        // On the GPU the statistics are one group per channel after the convolution (the output is in device memory
        // either way); batch norm then skips its own statistics.
        if (channelStats != null)
            (_channelStats ??= Accelerator.LoadStreamKernel<FView, FView, NormParams>(IlgpuConvKernels.ChannelStats))
                (new KernelConfig(new Index1D(s.K), new Index1D(_normGroup)), V(y), V(channelStats),
                 NormParams.From(new BatchNormSpec(s.N, s.K, s.OutH * s.OutW), training: true, accumulate: false));
    }

    protected override void Conv2dBackwardInputCore(in ConvSpec s, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate)
    {
        if (ChooseConvKernel(s, ConvPass.InputGrad) == GpuConvKernel.ImplicitGemm) ImplicitConvBackwardInput(s, dy, weight, dx, accumulate);
        else Auto(ref _convBackwardInput, IlgpuConvKernels.ConvBackwardInput)((int)s.InputSize, V(dy), V(weight), V(dx), ConvParams.From(s, accumulate));
    }

    protected override void Conv2dBackwardWeightCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate)
    {
        if (ChooseConvKernel(s, ConvPass.WeightGrad) == GpuConvKernel.ImplicitGemm) { ImplicitConvBackwardWeight(s, x, dy, dw, accumulate); return; }
        (_convBackwardWeight ??= Accelerator.LoadStreamKernel<FView, FView, FView, ConvParams>(IlgpuConvKernels.ConvBackwardWeight))
            (new KernelConfig(new Index1D((int)s.WeightSize), new Index1D(_rowGroup)), V(x), V(dy), V(dw), ConvParams.From(s, accumulate));
    }

    protected override void BatchNormCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training,
        DeviceBuffer<float>? channelStats) =>
        (_batchNorm ??= Accelerator.LoadStreamKernel<FView, FView, FView, FView, FView, FView, FView, FView, FView, NormParams, int>(IlgpuConvKernels.BatchNorm))
            (new KernelConfig(new Index1D(s.C), new Index1D(_normGroup)), V(x), V(gamma), V(beta), V(y), V(saveMean), V(saveInvStd), V(runningMean), V(runningVar),
             V(channelStats ?? saveMean), NormParams.From(s, training, false), channelStats == null ? 0 : 1);

    protected override void BatchNormBackwardCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool training, bool accumulate,
        DeviceBuffer<float>? beta) =>
        (_batchNormBackward ??= Accelerator.LoadStreamKernel<FView, FView, FView, FView, FView, FView, FView, FView, FView, NormParams>(IlgpuConvKernels.BatchNormBackward))
            (new KernelConfig(new Index1D(s.C), new Index1D(_normGroup)), V(x), V(dy), V(beta ?? gamma), V(gamma), V(saveMean), V(saveInvStd), V(dx), V(dGamma), V(dBeta), NormParams.From(s, training, accumulate));

    protected override void Pool2dCore(in PoolSpec s, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<int>? argMax) =>
        (_pool ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, IView, PoolParams, int>(IlgpuConvKernels.Pool))
            ((int)s.OutputSize, V(x), V(y), V(argMax), PoolParams.From(s), argMax == null ? 0 : 1);

    protected override void Pool2dBackwardCore(in PoolSpec s, DeviceBuffer<float> dy, DeviceBuffer<int>? argMax, DeviceBuffer<float> dx, bool accumulate) =>
        Auto(ref _poolBackward, IlgpuConvKernels.PoolBackward)((int)s.InputSize, V(dy), V(argMax), V(dx), PoolParams.From(s, accumulate));

    protected override void DropoutCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float p, ulong seed) =>
        Auto(ref _dropout, IlgpuConvKernels.Dropout)(count, V(x), V(y), p, seed);

    /// <summary>Centroids by the segmented reduction where a group's per-class column sums fit in shared memory
    /// (classes x group floats, group shrunk to 32 threads if needed); the per-element scan otherwise.</summary>
    protected override void ClassCentroidsCore(DeviceBuffer<float> features, DeviceBuffer<int> labels, DeviceBuffer<float> centroids, int count, int dim, int classes)
    {
        const int sharedFloats = 48 * 1024 / 4;
        int group = Math.Min(_rowGroup, LargestPowerOfTwoAtMost(Math.Max(1, dim)));
        while (group > 32 && classes * (group + 1) > sharedFloats) group /= 2;
        if (classes * (group + 1) > sharedFloats)
        {
            (_centroids ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, IView, FView, int, int>(IlgpuAnalysisKernels.Centroids))
                (classes * dim, V(features), V(labels), V(centroids), count, dim);
            return;
        }
        using var counts = Allocate(classes);
        Fill(counts, 0, classes, 0f);
        Fill(centroids, 0, classes * dim, 0f);
        // Enough groups for about four per multiprocessor, and at least 64 rows each.
        int tiles = (dim + group - 1) / group;
        int chunks = Math.Max(1, Math.Min((count + 63) / 64, (4 * Accelerator.NumMultiprocessors + tiles - 1) / tiles));
        int rowsPerChunk = Math.Max(1, (count + chunks - 1) / chunks);
        chunks = Math.Max(1, (count + rowsPerChunk - 1) / rowsPerChunk);
        (_centroidSums ??= Accelerator.LoadStreamKernel<FView, IView, FView, FView, int, int, int, int>(IlgpuAnalysisKernels.CentroidSums))
            (new KernelConfig(new Index2D(tiles, chunks), new Index2D(group, 1), SharedMemoryConfig.RequestDynamic<float>(classes * (group + 1))),
             V(features), V(labels), V(centroids), V(counts), count, dim, classes, rowsPerChunk);
        (_centroidDivide ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, int>(IlgpuAnalysisKernels.CentroidDivide))
            (classes * dim, V(centroids), V(counts), dim);
    }

    protected override void PairwiseDistancesCore(DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> distances, int m, int n, int dim) =>
        (_distances ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, FView, int, int>(IlgpuAnalysisKernels.Distances))
            (m * n, V(a), V(b), V(distances), n, dim);

    protected override void ConfusionMatrixCore(DeviceBuffer<int> predictions, DeviceBuffer<int> labels, DeviceBuffer<int> matrix, int count, int classes) =>
        Auto(ref _confusion, IlgpuKernels.Confusion)(count, V(predictions), V(labels), V(matrix), classes);
}
