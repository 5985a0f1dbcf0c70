using BenchmarkDotNet.Running;

namespace LsKd.Bench;

/// <summary>BenchmarkDotNet entry: `dotnet run -c Release --project bench -- --filter '*Gemm*'`.
/// The side-by-side PyTorch comparison in one run is `lskd bench gemm --peer` (see docs/BENCHMARKS.md).</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
