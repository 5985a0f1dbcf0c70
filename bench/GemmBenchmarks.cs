using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;

namespace LsKd.Bench;

/// <summary>CPU GEMM at square sizes and the convolution-shaped im2col GEMM (batch 128 of 28x28 images, 32
/// channels, 3x3 kernels: 100352 x 288 times 288 x 64), on one and two threads. Buffers and kernels are set up
/// outside the timed region; the GFLOP/s column is 2MNK / mean time.</summary>
[Config(typeof(GflopsConfig))]
public class GemmBenchmarks
{
    [Params("64x64x64", "256x256x256", "512x512x512", "1024x1024x1024", "2048x2048x2048", "100352x64x288")]
    public string Shape { get; set; } = "64x64x64";

    [Params(1, 2)]
    public int Threads { get; set; }

    CpuBackend _backend = null!;
    DeviceBuffer<float> _a = null!, _b = null!, _c = null!;
    GemmSpec _spec;

    [GlobalSetup]
    public void Setup()
    {
        var p = Shape.Split('x').Select(int.Parse).ToArray();
        int m = p[0], n = p[1], k = p[2];
        _backend = new CpuBackend(Threads);
        _a = _backend.Allocate(m * k); _b = _backend.Allocate(k * n); _c = _backend.Allocate(m * n);
        _backend.InitUniform(_a, m * k, 1, -1, 1); _backend.InitUniform(_b, k * n, 2, -1, 1);
        _spec = new GemmSpec(false, false, m, n, k);
    }

    [Benchmark]
    public void Gemm() => _backend.Gemm(_spec, _a, _b, _c);

    public static double Flops(string shape) => 2.0 * shape.Split('x').Select(double.Parse).Aggregate((x, y) => x * y);

    sealed class GflopsConfig : ManualConfig
    {
        public GflopsConfig()
        {
            AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(10));
            AddColumn(new GflopsColumn());
        }
    }

    sealed class GflopsColumn : IColumn
    {
        public string Id => "GFLOPs";
        public string ColumnName => "GFLOP/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "2 M N K / mean time";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var report = summary[benchmarkCase];
            if (report?.ResultStatistics == null) return "-";
            var shape = (string)benchmarkCase.Parameters["Shape"];
            return (Flops(shape) / report.ResultStatistics.Mean).ToString("F1");   // flops per ns = GFLOP/s
        }
    }
}
